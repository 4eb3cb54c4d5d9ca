"""Decoding the topic's records fast: msgspec for the records ingest writes, pydantic for the rest.

`Touchpoint.from_json` (pydantic) took ~3.5 µs a record, and its datetimes carry pydantic's own
tzinfo, which made every later time computation slower: ~5 µs a record in all, a seventh of the
stager's CPU. `TouchpointRecord` decodes the same fields under the same constraints in ~0.6 µs.
Whatever it refuses, or might read differently, goes to `Touchpoint.from_json`, which decides
and names the problem, so both paths accept the same records with the same values
(tests/shared/test_wire.py).
"""

import re
from datetime import datetime
from typing import Annotated, Any

import msgspec

from stageline_shared.events import (
    NUL_ESCAPED,
    UNDECODABLE,
    WIRE_VERSION,
    Touchpoint,
    TouchpointFields,
    TouchpointType,
    too_deep_field,
)

_ID = msgspec.Meta(min_length=1, max_length=128)
_CUSTOMER = msgspec.Meta(min_length=1, max_length=255)
_NAME = msgspec.Meta(min_length=1, max_length=200)
_AWARE = msgspec.Meta(tz=True)

# Left to pydantic: an escaped NUL (Touchpoint refuses NULs and says where), and a run of seven
# digits after a point, which may be a time with more than microseconds (msgspec rounds those,
# pydantic truncates). A match elsewhere in a record only costs it the slower path. Two checks:
# one regex with both as alternatives took three times as long.
_SUB_MICROSECONDS = re.compile(rb"\.\d{7}")


class TouchpointRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Touchpoint's fields and constraints, as msgspec decodes them."""

    v: int = WIRE_VERSION
    type: TouchpointType = "track"
    event_id: Annotated[str, _ID]
    customer_id: Annotated[str, _CUSTOMER]
    event: Annotated[str, _NAME]
    channel: str | None = None
    occurred_at: Annotated[datetime, _AWARE]
    received_at: Annotated[datetime, _AWARE]
    clamped: bool = False
    properties: dict[str, Any] = {}
    user_id: str | None = None
    anonymous_id: str | None = None
    previous_id: str | None = None
    group_id: str | None = None
    context: dict[str, Any] = {}
    source: str | None = None


_DECODER = msgspec.json.Decoder(TouchpointRecord)


def decode_touchpoint(raw: bytes) -> TouchpointFields:
    """A record value as a touchpoint; raises ValueError naming the problem."""
    if NUL_ESCAPED not in raw and not _SUB_MICROSECONDS.search(raw):
        try:
            record = _DECODER.decode(raw)
        except UNDECODABLE:  # not JSON, or not the contract
            pass
        else:
            if too_deep_field(record) is None:
                return record
    return Touchpoint.from_json(raw)
