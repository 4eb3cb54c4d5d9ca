"""Segment HTTP Tracking API routes (/v1/track, /v1/identify, …, /v1/batch).

Websites and apps already instrumented with a Segment-compatible SDK only change the host. The
answer is 200 {"success": true} (the SDKs treat anything else as a failure to retry or drop), and
only once the broker holds the events. Each route is also served under the one-letter path
analytics.js posts to (/v1/t, /v1/i, …, /v1/b), by the same handler.
"""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from stageline_ingest.auth import check_write_key
from stageline_ingest.body import decode_body, read_body
from stageline_ingest.delivery import deliver
from stageline_ingest.metrics import EVENTS_REJECTED, count_rejected, refusals_counted
from stageline_ingest.openapi import INGEST_ERRORS
from stageline_ingest.segment.docs import SegmentAccepted, segment_doc
from stageline_ingest.segment.intake import (
    MAX_REQUEST_BYTES,
    TYPES,
    Rejection,
    SegmentType,
    parse_document,
    read_batch,
    read_message,
    write_key_of,
)
from stageline_shared.auth import presented_key
from stageline_shared.errors import ApiError, json_response
from stageline_shared.keys import ApiKey

router = APIRouter(tags=["segment"], responses=INGEST_ERRORS)

EXAMPLES: dict[str, dict[str, Any]] = {
    "track": {"userId": "u-42", "event": "Order Completed", "properties": {"total": 42.5}},
    "identify": {"userId": "u-42", "anonymousId": "a-7", "traits": {"plan": "pro"}},
    "page": {"anonymousId": "a-7", "name": "Pricing", "properties": {"url": "https://shop.example/pricing"}},
    "screen": {"userId": "u-42", "name": "Cart"},
    "group": {"userId": "u-42", "groupId": "acme", "traits": {"employees": 40}},
    "alias": {"userId": "u-42", "previousId": "a-7"},
    "batch": {"batch": [{"type": "track", "userId": "u-42", "event": "Product Viewed"},
                        {"type": "page", "anonymousId": "a-7", "name": "Pricing"}],
              "context": {"library": {"name": "analytics-node"}}, "sentAt": "2026-11-23T10:00:00Z"},
}


async def _read(request: Request) -> tuple[ApiKey, dict[str, Any], datetime]:
    """The write key, the JSON document and the receive time.

    A key in the Authorization header is checked before the body is read; without the header,
    the key is the body's `writeKey` (Segment's browser fallback).
    """
    key = None
    if "authorization" in request.headers:
        key = await check_write_key(request, presented_key(request))
    with refusals_counted():
        raw = await read_body(request, MAX_REQUEST_BYTES)
        document = parse_document(
            decode_body(raw, request.headers.get("content-encoding"), MAX_REQUEST_BYTES)
        )
    if key is None:
        key = await check_write_key(request, write_key_of(document))
    return key, document, datetime.now(UTC)


def _single(route: SegmentType) -> Callable[[Request], Awaitable[Response]]:
    async def accept(request: Request) -> Response:
        key, document, received_at = await _read(request)
        try:
            touchpoint = read_message(document, route, received_at, key.source)
        except Rejection as exc:
            EVENTS_REJECTED.labels(exc.reason).inc()
            raise ApiError(exc.status, exc.code, exc.message) from None
        await deliver(request, [touchpoint.to_record()], "messageId")
        return json_response({"success": True})

    accept.__name__ = f"segment_{route}"
    accept.__doc__ = f"One Segment `{route}` call; 200 once the broker holds it."
    return accept


async def segment_batch(request: Request) -> Response:
    """Up to 2,500 Segment messages; refused ones are listed, the others accepted."""
    key, document, received_at = await _read(request)
    with refusals_counted():
        intake = read_batch(document, received_at, key.source)
    count_rejected(intake.reasons)
    if not intake.accepted:
        raise ApiError(400, "no_valid_events", "no valid messages: " + intake.rejected[0]["error"],
                       rejected=intake.rejected)
    await deliver(request, [t.to_record() for t in intake.accepted], "messageId")
    return json_response({"success": True, "accepted": len(intake.accepted), "rejected": intake.rejected})


# analytics.js (@segment/analytics-next) posts to Segment's short paths: the first letter of the
# call's type (track → /v1/t, …), and /v1/b in its batching mode. An SDK that meets a 404 drops
# the event for good, so both spellings stay served, by one handler each.
SHORT_PATHS: dict[str, str] = {route: route[0] for route in (*TYPES, "batch")}


def _add(route: str, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
    """`POST /v1/<route>` and its short path, documented alike (their operation ids differ)."""
    extra = segment_doc(EXAMPLES[route])
    router.add_api_route(f"/v1/{route}", endpoint, methods=["POST"], openapi_extra=extra,
                         response_model=SegmentAccepted)
    router.add_api_route(
        f"/v1/{SHORT_PATHS[route]}", endpoint, methods=["POST"], openapi_extra=extra,
        response_model=SegmentAccepted, operation_id=f"{endpoint.__name__}_short",
        summary=f"Segment {route} (analytics.js's short path)",
        description=f"`POST /v1/{route}` under the path analytics.js posts to. {endpoint.__doc__}",
    )


for _route in TYPES:
    _add(_route, _single(_route))
_add("batch", segment_batch)
