"""One event as a client sends it to /v1/events, and how it becomes a record.

`TouchpointIn` (pydantic) names every problem and documents the body in OpenAPI; `PlainEvent`
(msgspec) declares the same fields under the same limits for ingest's fast decoding of plainly
valid bodies (stageline_ingest.native.plain). tests/shared/test_contract.py holds the two together.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
import uuid_utils
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from stageline_shared.contract.checks import parse_timestamp, require_printable, require_storable
from stageline_shared.contract.limits import (
    CHANNEL,
    CUSTOMER_ID,
    EVENT_ID,
    EVENT_NAME,
    MAX_BATCH_EVENTS,
    MAX_FUTURE_SKEW,
    TIME_TEXT,
)
from stageline_shared.contract.record import Touchpoint

# A customer id as clients send it: in an event, and in the API's paths. (A lone surrogate, which
# no UTF-8 encodes and so Postgres cannot store, fails the length check: pydantic measures the
# string as UTF-8 and refuses it as string_unicode.)
CustomerId = Annotated[str, CUSTOMER_ID.field(), AfterValidator(require_printable)]


class TouchpointIn(BaseModel):
    """One touchpoint as a client sends it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    event_id: Annotated[str, EVENT_ID.field()] | None = None
    customer_id: CustomerId
    event: Annotated[str, EVENT_NAME.field()]
    channel: Annotated[str, CHANNEL.field()] | None = None
    occurred_at: Annotated[str, Field(max_length=TIME_TEXT.max)] | None = None
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("event_id", "event", "channel")
    @classmethod
    def _printable_and_not_blank(cls, value: str | None) -> str | None:
        return None if value is None else require_printable(value)

    @field_validator("occurred_at")
    @classmethod
    def _rfc3339(cls, value: str | None) -> str | None:
        if value is not None:
            parse_timestamp(value)
        return value

    @field_validator("properties")
    @classmethod
    def _properties_storable(cls, value: dict[str, Any]) -> dict[str, Any]:
        require_storable(value)
        return value


class PlainEvent(msgspec.Struct, forbid_unknown_fields=True):
    """TouchpointIn's fields with the constraints msgspec can check (what it cannot, blank and
    control characters, depth, times and NULs, stageline_ingest.native.plain checks)."""

    customer_id: Annotated[str, CUSTOMER_ID.meta()]
    event: Annotated[str, EVENT_NAME.meta()]
    event_id: Annotated[str, EVENT_ID.meta()] | None = None
    channel: Annotated[str, CHANNEL.meta()] | None = None
    occurred_at: Annotated[str, msgspec.Meta(max_length=TIME_TEXT.max)] | None = None
    properties: dict[str, Any] = {}


class PlainBatch(msgspec.Struct, forbid_unknown_fields=True):
    """A `{"batch": [...]}` body of plain events."""

    batch: Annotated[list[PlainEvent], msgspec.Meta(min_length=1, max_length=MAX_BATCH_EVENTS)]


def new_event_id() -> str:
    """A fresh id for an event sent without one: a UUIDv7 (RFC 9562), time-ordered.

    New touchpoints then land at the right edge of the primary-key index, not on random pages,
    and one is made in a tenth of a uuid4's time."""
    return str(uuid_utils.uuid7())


def stamp(event: TouchpointIn, received_at: datetime, source: str | None = None) -> Touchpoint:
    """Complete a client event: assign an id, default and clamp its time, add received_at."""
    occurred_at = parse_timestamp(event.occurred_at) if event.occurred_at else received_at
    clamped = occurred_at - received_at > MAX_FUTURE_SKEW
    return Touchpoint(
        event_id=event.event_id or new_event_id(),
        customer_id=event.customer_id,
        event=event.event,
        channel=event.channel,
        occurred_at=received_at if clamped else occurred_at.astimezone(UTC),
        received_at=received_at,
        clamped=clamped,
        properties=event.properties,
        source=source,
    )
