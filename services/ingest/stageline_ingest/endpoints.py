"""Ingest routes: POST /v1/events, health and readiness."""

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from stageline_shared.errors import ApiError, json_response
from stageline_shared.events import MAX_REQUEST_BYTES
from stageline_shared.health import readiness
from stageline_shared.keys import ApiKey

from stageline_ingest.auth import require_write_key
from stageline_ingest.intake import read_events
from stageline_ingest.metrics import (
    BROKER_UNAVAILABLE,
    EVENTS_ACCEPTED,
    EVENTS_CLAMPED,
    EVENTS_REJECTED,
)
from stageline_ingest.producer import BrokerUnavailable, TouchpointProducer

log = logging.getLogger(__name__)
router = APIRouter()

EVENTS_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"examples": {
            "one": {"value": {"customer_id": "c-42", "event": "Product Viewed", "channel": "web",
                              "properties": {"sku": "SKU-1"}}},
            "batch": {"value": {"batch": [{"customer_id": "c-42", "event": "Order Completed"}]}},
        }}},
    }
}


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise ApiError(
            413, "body_too_large", f"request body is {declared} bytes; the limit is {MAX_REQUEST_BYTES}"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REQUEST_BYTES:
            raise ApiError(
                413, "body_too_large", f"request body exceeds the limit of {MAX_REQUEST_BYTES} bytes"
            )
    return bytes(body)


@router.post("/v1/events", status_code=202, openapi_extra=EVENTS_DOC)
async def post_events(request: Request, key: Annotated[ApiKey, Depends(require_write_key)]) -> Response:
    """Accept one touchpoint or {"batch": [...]}; 202 only once the broker holds them."""
    try:
        intake = read_events(await _read_body(request), datetime.now(UTC), key.source)
    except ApiError as exc:
        EVENTS_REJECTED.labels(exc.code).inc()
        raise
    for reason in intake.reasons:
        EVENTS_REJECTED.labels(reason).inc()
    if not intake.accepted:
        raise ApiError(
            422, "no_valid_events", "no valid events: " + intake.rejected[0]["error"],
            rejected=intake.rejected,
        )
    producer: TouchpointProducer = request.app.state.producer
    try:
        await producer.produce(intake.accepted)
    except BrokerUnavailable as exc:
        BROKER_UNAVAILABLE.inc()
        log.warning("answered 503 for %d events: %s", len(intake.accepted), exc)
        retry_after = str(request.app.state.settings.retry_after_s)
        raise ApiError(
            503, "broker_unavailable",
            f"{exc}; nothing was acknowledged, retry the request (events with an event_id are "
            "deduplicated)",
            headers={"Retry-After": retry_after},
        ) from None
    EVENTS_ACCEPTED.inc(len(intake.accepted))
    EVENTS_CLAMPED.inc(sum(t.clamped for t in intake.accepted))
    body: dict[str, Any] = {
        "accepted": len(intake.accepted),
        "event_ids": [t.event_id for t in intake.accepted],
        "rejected": intake.rejected,
    }
    return json_response(body, status=202)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    ready, checks = await readiness(request.app.state.settings.kafka_bootstrap_servers,
                                    request.app.state.db)
    return json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)
