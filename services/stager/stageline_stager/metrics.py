"""The stager's Prometheus metrics."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_APPLIED = Counter(
    "stageline_stager_events_applied_total", "Touchpoints stored and applied to journeys."
)
DUPLICATES_SKIPPED = Counter(
    "stageline_stager_duplicates_skipped_total", "Redelivered or resent touchpoints skipped by event_id."
)
DEAD_LETTERED = Counter(
    "stageline_stager_dead_lettered_total", "Records sent to the dead-letter topic.", ["reason"]
)
TRANSITIONS = Counter(
    "stageline_stager_transitions_total", "Stage transitions.", ["journey", "from_stage", "to_stage"]
)
BATCH_SECONDS = Histogram(
    "stageline_stager_batch_duration_seconds", "Time to apply and commit one polled batch.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_RECORDS = Histogram(
    "stageline_stager_batch_records", "Records per polled batch.",
    buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10000),
)
CONSUMER_LAG = Gauge(
    "stageline_stager_consumer_lag", "High watermark minus next offset to apply.", ["topic", "partition"]
)
DB_RETRIES = Counter(
    "stageline_stager_db_retries_total", "Batches retried after a database error.", ["reason"]
)
MERGES = Counter(
    "stageline_stager_identity_merges_total", "Customers merged into another (identity stitching)."
)
LINK_CONFLICTS = Counter(
    "stageline_stager_identity_conflicts_total",
    "Links refused because the id already belongs to another customer (first link wins).",
)
SUPPRESSED = Counter(
    "stageline_stager_suppressed_total", "Events for erased ids, counted and not stored."
)
ERASED = Counter("stageline_stager_customers_erased_total", "Customers erased on request.")
