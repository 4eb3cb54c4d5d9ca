"""Code shared by Stageline's services: event contract, settings, journeys, database schema."""
