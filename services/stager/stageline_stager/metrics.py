"""The stager's Prometheus metrics."""

import contextlib
import time
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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


class LagSeconds(Collector):
    """`stageline_stager_lag_seconds`: per partition, the age of the oldest event acknowledged by
    the broker and not yet applied, from its record's timestamp (when ingest produced it); 0
    when caught up. Computed at each scrape, so it keeps growing while the stager is stuck."""

    def __init__(self) -> None:
        self._oldest: dict[tuple[str, str], float | None] = {}

    def pending(self, topic: str, partition: int, timestamp_ms: int | None) -> None:
        """The oldest unapplied record's timestamp now (None: nothing is pending)."""
        self._oldest[(topic, str(partition))] = (
            timestamp_ms / 1000 if timestamp_ms is not None and timestamp_ms > 0 else None
        )

    def forget(self, topic: str, partition: int) -> None:
        self._oldest.pop((topic, str(partition)), None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "stageline_stager_lag_seconds",
            "Age of the oldest acknowledged event not yet applied, per partition (0 when caught up).",
            labels=["topic", "partition"],
        )
        now = time.time()
        for labels, oldest in sorted(self._oldest.items()):
            family.add_metric(list(labels), 0.0 if oldest is None else max(0.0, now - oldest))
        yield family


LAG_SECONDS = LagSeconds()
REGISTRY.register(LAG_SECONDS)


def forget_partition(topic: str, partition: int) -> None:
    """Drop a revoked partition's lag: its new owner reports it, and a stale copy would add up."""
    LAG_SECONDS.forget(topic, partition)
    with contextlib.suppress(KeyError):  # never reported
        CONSUMER_LAG.remove(topic, str(partition))


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
