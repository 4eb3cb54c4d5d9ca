"""Ingest: HTTP endpoint that validates touchpoints and produces them to Kafka."""
