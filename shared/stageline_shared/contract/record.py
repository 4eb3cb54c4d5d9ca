"""One touchpoint as it travels on the topic: JSON, keyed by customer_id.

`TouchpointRecord` (msgspec) is the record's one declaration of its bytes: ingest encodes it,
the stager decodes it (~0.6 µs a record). `Touchpoint` (pydantic) declares the same fields for
what must name a problem: building records from Segment messages, and reading the records the
fast decoder refuses or might read differently. tests/shared/test_contract.py holds the two to
the same fields, defaults, limits and values.
"""

import re
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

import msgspec
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from stageline_shared.contract.checks import NUL_ESCAPED, nests_deeper, reject_nul, too_deep
from stageline_shared.contract.limits import CUSTOMER_ID, EVENT_ID, EVENT_NAME, WIRE_VERSION
from stageline_shared.wording import describe_validation_error

TouchpointType = Literal["track", "identify", "page", "screen", "group", "alias", "erase"]

# The one JSON encoder of records.
encode_json = msgspec.json.Encoder().encode
# What msgspec raises for bytes it cannot decode: not JSON, invalid UTF-8 inside a string
# (UnicodeDecodeError, not DecodeError), or nesting too deep for its recursion.
UNDECODABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_AWARE = msgspec.Meta(tz=True)


class TouchpointRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A record's fields, in the order written; those at their defaults left out (a third of a
    track event's bytes). `v` and `type` have no default, so they are always written first; a
    record without them is read by `Touchpoint`, which supplies them."""

    v: int
    type: TouchpointType
    event_id: Annotated[str, EVENT_ID.meta()]
    customer_id: Annotated[str, CUSTOMER_ID.meta()]
    event: Annotated[str, EVENT_NAME.meta()]
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


class WireRecord(msgspec.Struct, frozen=True, gc=False):
    """A touchpoint ready for the topic: key and value, and what the HTTP answer reports of it.

    A Struct (untracked by the garbage collector: it holds no containers) is made in a third of
    a NamedTuple's time, once for every event ingest takes."""

    key: bytes  # customer_id, UTF-8
    value: bytes  # the TouchpointRecord JSON
    event_id: str
    clamped: bool


class Touchpoint(BaseModel):
    """A validated touchpoint, `TouchpointRecord`'s fields under pydantic.

    customer_id is the key the event was sent under: the user id when known, else the anonymous
    id. An event carrying both ids, or an alias (previous_id → user_id), links them; an `erase`
    record asks the stager to forget customer_id (privacy).
    """

    model_config = ConfigDict(frozen=True)

    v: int = WIRE_VERSION
    type: TouchpointType = "track"
    event_id: Annotated[str, EVENT_ID.field()]
    customer_id: Annotated[str, CUSTOMER_ID.field()]
    event: Annotated[str, EVENT_NAME.field()]
    channel: str | None = None
    occurred_at: AwareDatetime
    received_at: AwareDatetime
    clamped: bool = False
    properties: dict[str, Any] = Field(default_factory=dict)
    user_id: str | None = None
    anonymous_id: str | None = None
    previous_id: str | None = None
    group_id: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    source: str | None = None

    def to_json(self) -> bytes:
        """The record value, as `TouchpointRecord` writes it."""
        return encode_json(TouchpointRecord(**self.__dict__))

    def to_record(self) -> WireRecord:
        return WireRecord(self.customer_id.encode(), self.to_json(), self.event_id, self.clamped)

    @classmethod
    def from_json(cls, raw: bytes) -> "Touchpoint":
        """Decode a record value; raises ValueError naming the problem (UndecodableRecord when it
        is not JSON).

        Records need not come from ingest: one with a NUL, which Postgres cannot store, or nested
        deeper than ingest accepts, is refused here rather than failing its batch again and again.
        """
        try:
            touchpoint = cls.model_validate_json(raw)
        except ValidationError as exc:
            if exc.errors()[0]["type"] == "json_invalid":
                raise UndecodableRecord(_undecodable(raw)) from None
            raise ValueError(describe_validation_error(exc, "record")) from None
        except RecursionError:
            raise UndecodableRecord("record is nested too deeply to decode") from None
        field = too_deep_field(touchpoint)
        if field is not None:
            raise too_deep(field)
        if NUL_ESCAPED in raw:  # JSON carries a NUL only escaped (or it is an escaped backslash)
            touchpoint._reject_nul()
        return touchpoint

    def _reject_nul(self) -> None:
        for name in ("event_id", "customer_id", "event", "channel", "user_id", "anonymous_id",
                     "previous_id", "group_id", "source"):
            value = getattr(self, name)
            if value is not None and "\x00" in value:
                raise ValueError(f"{name} contains a NUL character (U+0000)")
        reject_nul(self.properties)
        reject_nul(self.context, "context")


class UndecodableRecord(ValueError):
    """A record value that is not a JSON document at all (as against one breaking the contract)."""


def _undecodable(raw: bytes) -> str:
    """Why a record value is not a JSON document, in our words."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"record is not valid UTF-8 (at byte {exc.start})"
    return "record is not valid JSON, or nests too deeply to decode"


class TouchpointFields(Protocol):
    """A touchpoint's fields, read-only: a TouchpointRecord, or a Touchpoint."""

    @property
    def type(self) -> TouchpointType: ...
    @property
    def event_id(self) -> str: ...
    @property
    def customer_id(self) -> str: ...
    @property
    def event(self) -> str: ...
    @property
    def channel(self) -> str | None: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def received_at(self) -> datetime: ...
    @property
    def clamped(self) -> bool: ...
    @property
    def properties(self) -> dict[str, Any]: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def anonymous_id(self) -> str | None: ...
    @property
    def previous_id(self) -> str | None: ...
    @property
    def context(self) -> dict[str, Any]: ...
    @property
    def source(self) -> str | None: ...


def too_deep_field(touchpoint: TouchpointFields) -> str | None:
    """"properties" or "context" when it nests deeper than ingest accepts, else None."""
    for name, value in (("properties", touchpoint.properties), ("context", touchpoint.context)):
        if value and nests_deeper(value):
            return name
    return None


def links(touchpoint: TouchpointFields) -> list[tuple[str, str]]:
    """(id to merge, id it merges into) pairs the touchpoint asserts."""
    pairs = []
    user_id, anonymous_id = touchpoint.user_id, touchpoint.anonymous_id
    if user_id and anonymous_id and anonymous_id != user_id:
        pairs.append((anonymous_id, user_id))
    previous_id = touchpoint.previous_id
    if touchpoint.type == "alias" and previous_id and user_id and previous_id != user_id:
        pairs.append((previous_id, user_id))
    return pairs


# Left to pydantic: an escaped NUL (Touchpoint refuses NULs and says where), and a run of seven
# digits after a point, which may be a time with more than microseconds (msgspec rounds those,
# pydantic truncates). A match elsewhere in a record only costs it the slower path. Two checks:
# one regex with both as alternatives took three times as long.
_SUB_MICROSECONDS = re.compile(rb"\.\d{7}")
_DECODER = msgspec.json.Decoder(TouchpointRecord)


def decode_touchpoint(raw: bytes) -> TouchpointFields:
    """A record value as a touchpoint; raises ValueError naming the problem.

    msgspec reads what it can read exactly as pydantic would; whatever it refuses, or might read
    differently, goes to `Touchpoint.from_json`, which decides and names the problem. (pydantic's
    datetimes also carry its own tzinfo, which slows every later time computation.)"""
    if NUL_ESCAPED not in raw and not _SUB_MICROSECONDS.search(raw):
        try:
            record = _DECODER.decode(raw)
        except UNDECODABLE:  # not JSON, or not the contract
            pass
        else:
            if too_deep_field(record) is None:
                return record
    return Touchpoint.from_json(raw)
