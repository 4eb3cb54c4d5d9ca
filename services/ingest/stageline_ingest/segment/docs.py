"""What the OpenAPI document says of the Segment routes: Segment's answer and request bodies."""

from typing import Any

from pydantic import BaseModel

from stageline_ingest.openapi import Rejected


class SegmentAccepted(BaseModel):
    """Segment's answer; /v1/batch adds how many messages were accepted and which were refused."""

    success: bool
    accepted: int | None = None
    rejected: list[Rejected] | None = None



def segment_doc(example: dict[str, Any]) -> dict[str, Any]:
    """A Segment route's request body: a JSON object, as Segment's HTTP Tracking API documents."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object"}, "example": example}}}}
