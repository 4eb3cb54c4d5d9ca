"""The stager: applies touchpoints from Kafka to journey stages in Postgres."""
