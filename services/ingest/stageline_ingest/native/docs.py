"""What the OpenAPI document says of POST /v1/events: its body, its answer, its errors.

The route reads its body itself (it never builds pydantic models of bodies it accepts), so the
request schema is given here rather than inferred by FastAPI.
"""

from typing import Any

from pydantic import BaseModel, Field, TypeAdapter

from stageline_ingest.openapi import INGEST_ERRORS, Rejected
from stageline_shared.contract.client_event import TouchpointIn
from stageline_shared.contract.limits import MAX_BATCH_EVENTS
from stageline_shared.errors import error_docs


class EventsAccepted(BaseModel):
    """Every accepted event is held by the broker; refused ones are listed, the others kept."""

    accepted: int
    event_ids: list[str] = Field(description="The accepted events' ids, in body order (assigned "
                                             "UUIDv7s where an event came without one)")
    rejected: list[Rejected]


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
