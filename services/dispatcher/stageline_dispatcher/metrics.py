"""The dispatcher's Prometheus metrics: deliveries and attempts as they happen, and the state of
the feed and the backlog read from Postgres at each scrape."""

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

ATTEMPTS = Counter("stageline_webhook_attempts_total", "Webhook requests sent.", ["endpoint"])
DELIVERIES = Counter(
    "stageline_webhook_deliveries_total",
    "Webhook attempts by outcome: delivered, retry (will be tried again), gone (410: endpoint "
    "disabled), given_up (the retry schedule is spent: endpoint disabled).",
    ["endpoint", "outcome"],
)
DISABLED = Counter("stageline_webhook_endpoint_disables_total",
                   "Endpoints the dispatcher disabled.", ["reason"])
RELAYED = Counter("stageline_feed_relayed_total", "Changes given a position in the feed.")
PUBLISHED = Counter("stageline_feed_published_total", "Changes published to the changes topic.")

STATE_QUERY = """
    SELECT
      (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') AS backlog,
      (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)
         FROM webhook_deliveries WHERE status = 'pending') AS backlog_age,
      (SELECT count(*) FROM webhook_endpoints WHERE disabled_at IS NOT NULL) AS disabled,
      (SELECT count(*) FROM stage_changes WHERE position IS NULL) AS unrelayed,
      (SELECT coalesce(extract(epoch FROM now() - min(recorded_at)), 0)
         FROM stage_changes WHERE position IS NULL) AS unrelayed_age,
      (SELECT position FROM feed_head) - (SELECT position FROM feed_published) AS unpublished
"""


class FeedState(Collector):
    """Gauges of the backlog and the feed, from the last reading of STATE_QUERY."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.read_at = 0.0

    def update(self, row: Any) -> None:
        self.values = {key: float(row[key]) for key in (
            "backlog", "backlog_age", "disabled", "unrelayed", "unrelayed_age", "unpublished")}
        self.read_at = time.time()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Each gauge; without samples until the first reading (absent, not a false 0)."""
        for name, key, text in (
            ("stageline_webhook_backlog", "backlog", "Webhook deliveries pending (all endpoints)."),
            ("stageline_webhook_backlog_oldest_seconds", "backlog_age",
             "Age of the oldest pending webhook delivery; 0 when none."),
            ("stageline_webhook_endpoints_disabled", "disabled", "Webhook endpoints disabled."),
            ("stageline_feed_unrelayed", "unrelayed", "Changes in the outbox without a feed position."),
            ("stageline_feed_unrelayed_oldest_seconds", "unrelayed_age",
             "Age of the oldest change without a feed position; 0 when none."),
            ("stageline_feed_unpublished", "unpublished", "Feed positions not yet published to Kafka."),
        ):
            family = GaugeMetricFamily(name, text)
            if key in self.values:
                family.add_metric([], self.values[key])
            yield family
        read = GaugeMetricFamily("stageline_feed_state_read_timestamp_seconds",
                                 "When the feed and backlog gauges were read.")
        if self.values:
            read.add_metric([], self.read_at)
        yield read


STATE = FeedState()
REGISTRY.register(STATE)
