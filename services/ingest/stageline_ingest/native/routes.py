"""Our own protocol's route: POST /v1/events (one touchpoint, or {"batch": [...]})."""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from stageline_ingest.auth import require_write_key
from stageline_ingest.body import read_body
from stageline_ingest.delivery import deliver
from stageline_ingest.metrics import count_rejected, refusals_counted
from stageline_ingest.native.docs import EVENTS_DOC, EVENTS_ERRORS, EventsAccepted
from stageline_ingest.native.intake import ReadEvents
from stageline_shared.contract.limits import MAX_REQUEST_BYTES
from stageline_shared.errors import ApiError, json_response
from stageline_shared.keys import ApiKey

router = APIRouter()


@router.post("/v1/events", status_code=202, openapi_extra=EVENTS_DOC, response_model=EventsAccepted,
             responses=EVENTS_ERRORS)
async def post_events(request: Request, key: Annotated[ApiKey, Depends(require_write_key)]) -> Response:
    """Accept one touchpoint or {"batch": [...]}; 202 only once the broker holds them."""
    with refusals_counted():
        read_events: ReadEvents = request.app.state.read_events
        intake = read_events(await read_body(request, MAX_REQUEST_BYTES), datetime.now(UTC), key.source)
    count_rejected(intake.reasons)
    if not intake.accepted:
        raise ApiError(
            422, "no_valid_events", "no valid events: " + intake.rejected[0]["error"],
            rejected=intake.rejected,
        )
    await deliver(request, intake.accepted)
    body: dict[str, Any] = {
        "accepted": len(intake.accepted),
        "event_ids": [r.event_id for r in intake.accepted],
        "rejected": intake.rejected,
    }
    return json_response(body, status=202)
