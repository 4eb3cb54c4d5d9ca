"""Ingest's Prometheus metrics."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

from stageline_shared.errors import ApiError

EVENTS_ACCEPTED = Counter(
    "stageline_ingest_events_accepted_total", "Events acknowledged by the broker and answered 2xx."
)
EVENTS_REJECTED = Counter(
    "stageline_ingest_events_rejected_total", "Events or requests refused, by reason.", ["reason"]
)
EVENTS_CLAMPED = Counter(
    "stageline_ingest_events_clamped_total", "Events whose occurred_at was >24 h ahead and clamped."
)
PRODUCE_SECONDS = Histogram(
    "stageline_ingest_produce_duration_seconds",
    "Time from producing a request's events to the broker's acks for all of them.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BROKER_UNAVAILABLE = Counter(
    "stageline_ingest_broker_unavailable_total", "Requests answered 503 because the broker failed."
)


@contextmanager
def refusals_counted() -> Iterator[None]:
    """Count a request refused as a whole (an ApiError) under its error code."""
    try:
        yield
    except ApiError as exc:
        EVENTS_REJECTED.labels(exc.code).inc()
        raise


def count_rejected(reasons: Iterable[str]) -> None:
    """Count the events of a batch that were refused, by reason."""
    for reason in reasons:
        EVENTS_REJECTED.labels(reason).inc()
