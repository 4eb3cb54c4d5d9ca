"""Handing accepted touchpoints to the broker: a 2xx only once it holds them, else 503."""

import logging
from collections.abc import Sequence

from fastapi import Request

from stageline_ingest.metrics import BROKER_UNAVAILABLE, EVENTS_ACCEPTED, EVENTS_CLAMPED
from stageline_ingest.producer import BrokerUnavailable, TouchpointProducer
from stageline_shared.contract.record import WireRecord
from stageline_shared.errors import ApiError

log = logging.getLogger(__name__)


async def deliver(request: Request, records: Sequence[WireRecord], id_field: str = "event_id") -> None:
    """Produce and wait for the acks; raise a 503 ApiError with Retry-After when the broker fails.

    `id_field` names the client's deduplication key in the 503 message (event_id, messageId).
    """
    producer: TouchpointProducer = request.app.state.producer
    try:
        await producer.produce(records)
    except BrokerUnavailable as exc:
        BROKER_UNAVAILABLE.inc()
        log.warning("answered 503 for %d events: %s", len(records), exc)
        retry_after = str(request.app.state.settings.retry_after_s)
        raise ApiError(
            503, "broker_unavailable",
            f"{exc}; nothing was acknowledged, retry the request (events with an {id_field} are "
            "deduplicated)",
            headers={"Retry-After": retry_after},
        ) from None
    EVENTS_ACCEPTED.inc(len(records))
    clamped = sum(r.clamped for r in records)
    if clamped:
        EVENTS_CLAMPED.inc(clamped)
