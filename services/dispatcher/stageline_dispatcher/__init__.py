"""The dispatcher: relays the stager's outbox into the change feed, publishes the feed to Kafka
and delivers signed webhooks."""
