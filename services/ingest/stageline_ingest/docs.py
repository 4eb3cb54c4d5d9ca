"""What ingest's OpenAPI document says: request and answer shapes, and every error status.

The routes read their bodies themselves (ingest's hot path never builds pydantic models of
bodies it accepts), so the request schemas are given here rather than inferred by FastAPI.
"""

from typing import Any

from pydantic import BaseModel, Field, TypeAdapter

from stageline_shared.contract.client_event import TouchpointIn
from stageline_shared.contract.limits import MAX_BATCH_EVENTS
from stageline_shared.errors import error_docs


class Rejected(BaseModel):
    index: int = Field(description="The event's position in the batch (0 for a body of one event)")
    error: str = Field(description="What is wrong with it, naming the field")
    code: str | None = Field(default=None, description="Segment routes: a machine-readable reason")


class EventsAccepted(BaseModel):
    """Every accepted event is held by the broker; refused ones are listed, the others kept."""

    accepted: int
    event_ids: list[str] = Field(description="The accepted events' ids, in body order (assigned "
                                             "UUIDv7s where an event came without one)")
    rejected: list[Rejected]


class SegmentAccepted(BaseModel):
    """Segment's answer; /v1/batch adds how many messages were accepted and which were refused."""

    success: bool
    accepted: int | None = None
    rejected: list[Rejected] | None = None


# Any route may refuse a request before looking at its events.
INGEST_ERRORS = error_docs({
    400: "The body is not JSON (or not valid gzip), or not an event or a batch; or the URL is not "
         "UTF-8 once percent-decoded",
    401: "No write key, or an unknown or revoked one",
    403: "A key that is not a write key",
    413: "The body, or one event, is over its size limit, or the batch has too many events",
    415: "A Content-Encoding other than gzip or identity",
    429: "This key is over its request rate; retry after Retry-After",
    503: "The broker or the database is unavailable: nothing was stored; retry after Retry-After",
})

_EVENT = TypeAdapter(TouchpointIn).json_schema()
EVENTS_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {
            "schema": {"oneOf": [
                _EVENT,
                {"title": "Batch", "type": "object", "required": ["batch"], "additionalProperties": False,
                 "properties": {"batch": {"type": "array", "items": _EVENT, "minItems": 1,
                                          "maxItems": MAX_BATCH_EVENTS}}},
            ]},
            "examples": {
                "one": {"value": {"customer_id": "c-42", "event": "Product Viewed", "channel": "web",
                                  "properties": {"sku": "SKU-1"}}},
                "batch": {"value": {"batch": [{"customer_id": "c-42", "event": "Order Completed"}]}},
            },
        }},
    }
}
EVENTS_ERRORS = INGEST_ERRORS | error_docs({
    422: "No event in the body is valid; `rejected` names each one's problem",
})


def segment_doc(example: dict[str, Any]) -> dict[str, Any]:
    """A Segment route's request body: a JSON object, as Segment's HTTP Tracking API documents."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object"}, "example": example}}}}
