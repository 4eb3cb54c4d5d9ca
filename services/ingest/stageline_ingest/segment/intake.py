"""Segment HTTP Tracking API messages → touchpoints (pure: no I/O).

Each Segment call (track, identify, page, screen, group, alias) becomes one Touchpoint keyed by
userId when present (a blank one is absent), else anonymousId. What Segment's API and RudderStack's
gateway accept is accepted, but for the differences listed in README's table. Segment's own limits
apply: 32 KB a message, 500 KB a request, 2,500 messages a batch.
"""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

import msgspec
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError

from stageline_ingest.body import parse_json
from stageline_ingest.outcome import Intake
from stageline_ingest.segment.timestamps import read_time
from stageline_shared.contract.checks import require_printable, require_storable
from stageline_shared.contract.client_event import new_event_id
from stageline_shared.contract.limits import CHANNEL, CUSTOMER_ID, EVENT_ID, EVENT_NAME, MAX_FUTURE_SKEW
from stageline_shared.contract.record import Touchpoint
from stageline_shared.errors import ApiError
from stageline_shared.wording import describe_validation_error

MAX_MESSAGE_BYTES = 32 * 1024
MAX_REQUEST_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 2500

SegmentType = Literal["track", "identify", "page", "screen", "group", "alias"]
TYPES: tuple[SegmentType, ...] = get_args(SegmentType)
EVENT_NAMES: dict[SegmentType, str] = {
    "identify": "Identified", "page": "Page Viewed", "screen": "Screen Viewed",
    "group": "Group Joined", "alias": "Alias",
}
DEFAULT_CHANNELS: dict[SegmentType, str] = {"page": "web", "screen": "mobile"}


_printable = require_printable


# The validators below raise ValueError for a wrong type on purpose: pydantic reports only
# ValueError (not TypeError) as a validation error naming the field.


def _id_or_none(value: Any) -> str | None:
    """Segment ids may be strings or numbers; numbers become strings (42 → "42"), and a blank
    string counts as no id at all, as Segment's and RudderStack's servers count it (RudderStack's
    JS SDK sends `userId: ""` on every anonymous event)."""
    if value is None or isinstance(value, str):
        return value if value is None or value.strip() else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError("must be a string or a number")


# The outer BeforeValidator runs first, so a blank id is None before the length and character
# checks of a present one; errors still name the field alone (`userId: …`).
IdText = Annotated[str, CUSTOMER_ID.field(), AfterValidator(_printable)]
SegmentId = Annotated[IdText | None, BeforeValidator(_id_or_none)]
# A messageId is the event_id, so it takes the event contract's limit (Segment documents 100
# characters but does not refuse a longer one; RudderStack has no limit).
MessageIdText = Annotated[str, EVENT_ID.field(), AfterValidator(_printable)]
MessageId = Annotated[MessageIdText | None, BeforeValidator(_id_or_none)]
EventName = Annotated[str, EVENT_NAME.field(), AfterValidator(_printable)]
Timestamp = Annotated[datetime | None, BeforeValidator(read_time)]
JsonObject = dict[str, Any] | None


class SegmentMessage(BaseModel):
    """The fields of a Segment message Stageline reads; others (_metadata, integrations, …) are
    ignored whatever their shape, as Segment's and RudderStack's servers pass them through.

    Attribute names are Segment's JSON names, so validation errors name the field the client sent.
    """

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    userId: SegmentId = None
    anonymousId: SegmentId = None
    previousId: SegmentId = None
    groupId: SegmentId = None
    messageId: MessageId = None
    event: EventName | None = None
    name: str | None = None
    category: str | None = None
    properties: JsonObject = None
    traits: JsonObject = None
    context: JsonObject = None
    timestamp: Timestamp = None
    originalTimestamp: Timestamp = None
    sentAt: Timestamp = None


class Rejection(Exception):
    """Why one message was refused: reason is a metric label, status what a single call answers."""

    def __init__(self, message: str, reason: Literal["invalid", "too_large"] = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason

    @property
    def status(self) -> int:
        return 413 if self.reason == "too_large" else 400

    @property
    def code(self) -> str:
        return "event_too_large" if self.reason == "too_large" else "invalid_event"


def merge_context(outer: dict[str, Any], inner: dict[str, Any]) -> dict[str, Any]:
    """A batch's context under an item's: nested objects merge, the item wins on conflicts."""
    merged = dict(outer)
    for key, value in inner.items():
        below = merged.get(key)
        merged[key] = merge_context(below, value) if isinstance(below, dict) and isinstance(value, dict) \
            else value
    return merged


def occurred_at(
    timestamp: datetime | None, original: datetime | None, sent_at: datetime | None,
    received_at: datetime,
) -> tuple[datetime, bool]:
    """Segment's clock-skew rule, then the 24 h future clamp; returns (occurred_at, clamped).

    The device's time of the event is its timestamp, else its originalTimestamp (Segment's SDKs
    send the first, RudderStack's the second; Segment takes a timestamp as the originalTimestamp).
    sentAt is the same clock at sending, so the device's offset from ours is sentAt - receivedAt
    and the event happened at receivedAt - (sentAt - device time). Without sentAt the device
    time stands. Raises OverflowError out of range.
    """
    device = timestamp if timestamp is not None else original
    if device is None:
        moment = received_at
    elif sent_at is not None:
        moment = received_at - (sent_at - device)
    else:
        moment = device
    if moment - received_at > MAX_FUTURE_SKEW:
        return received_at, True
    return moment.astimezone(UTC), False


def _keys(message: SegmentMessage, kind: SegmentType) -> tuple[str, str]:
    """The customer id and event name, or a Rejection naming the missing field."""
    if kind == "alias" and message.previousId is None:
        raise Rejection("previousId: required for alias")
    if kind == "alias" and message.userId is None:
        raise Rejection("userId: required for alias")
    customer_id = message.userId or message.anonymousId
    if customer_id is None:
        raise Rejection("userId: required (or anonymousId)")
    if kind != "track":
        return customer_id, EVENT_NAMES[kind]
    if message.event is None:
        raise Rejection("event: required for track")
    return customer_id, message.event


def _properties(message: SegmentMessage, kind: SegmentType, context: dict[str, Any]) -> dict[str, Any]:
    if kind == "identify":
        nested = context.get("traits")
        if nested is not None and not isinstance(nested, dict):
            raise Rejection("context.traits: must be a JSON object")
        return {**(nested or {}), **(message.traits or {})}
    if kind == "group":
        # Only top-level traits: in a group call they describe the group, while context.traits
        # still describe the user.
        return dict(message.traits or {})
    if kind in ("page", "screen"):
        named = {k: v for k, v in (("name", message.name), ("category", message.category)) if v is not None}
        return {**(message.properties or {}), **named}
    if kind == "track":
        return dict(message.properties or {})
    return {}


def _channel(kind: SegmentType, context: dict[str, Any]) -> str | None:
    channel = context.get("channel")
    if not isinstance(channel, str):
        return DEFAULT_CHANNELS.get(kind)
    if len(channel) > CHANNEL.max:
        raise Rejection(f"context.channel: is longer than {CHANNEL.max} characters")
    try:
        return _printable(channel)
    except ValueError as exc:
        raise Rejection(f"context.channel: {exc}") from None


def _kind(item: dict[str, Any], route: SegmentType | None) -> SegmentType:
    declared = item.get("type")
    # RudderStack's processor reads the type trimmed and in any case ("Track"); so do we.
    named = declared.strip().lower() if isinstance(declared, str) else declared
    if route is not None:
        if declared is not None and named != route:
            raise Rejection(f"type: {str(declared)[:40]!r} does not match the route /v1/{route}")
        return route
    for kind in TYPES:
        if named == kind:
            return kind
    raise Rejection(f"type: must be one of {', '.join(TYPES)}")


def _touchpoint(
    item: Any, route: SegmentType | None, received_at: datetime, source: str | None,
    batch_context: dict[str, Any] | None, batch_sent_at: datetime | None,
) -> Touchpoint:
    if not isinstance(item, dict):
        raise Rejection(f"message must be a JSON object, got {type(item).__name__}")
    kind = _kind(item, route)
    own_context = item.get("context")
    if batch_context and (own_context is None or isinstance(own_context, dict)):
        item = {**item, "context": merge_context(batch_context, own_context or {})}
    # Measured as stored (after the batch context is merged in), so no record passes the limit.
    size = len(msgspec.json.encode(item))
    if size > MAX_MESSAGE_BYTES:
        raise Rejection(f"message is {size} bytes; the limit is {MAX_MESSAGE_BYTES}", "too_large")
    try:
        message = SegmentMessage.model_validate(item)
    except ValidationError as exc:
        raise Rejection(describe_validation_error(exc)) from None
    customer_id, event = _keys(message, kind)
    context = dict(message.context or {})
    properties = _properties(message, kind, context)
    try:
        require_storable(properties, "traits" if kind in ("identify", "group") else "properties")
        require_storable(context, "context")
    except ValueError as exc:
        raise Rejection(str(exc)) from None
    try:
        moment, clamped = occurred_at(message.timestamp, message.originalTimestamp,
                                      message.sentAt or batch_sent_at, received_at)
    except OverflowError:
        field = "timestamp" if message.timestamp else "originalTimestamp"
        raise Rejection(f"{field}: out of range (after correcting for clock skew)") from None
    try:
        return Touchpoint(
            type=kind,
            event_id=message.messageId or new_event_id(),
            customer_id=customer_id,
            event=event,
            channel=_channel(kind, context),
            occurred_at=moment,
            received_at=received_at,
            clamped=clamped,
            properties=properties,
            user_id=message.userId,
            anonymous_id=message.anonymousId,
            previous_id=message.previousId if kind == "alias" else None,
            group_id=message.groupId if kind == "group" else None,
            context=context,
            source=source,
        )
    except ValidationError as exc:
        raise Rejection(describe_validation_error(exc)) from None


def parse_document(body: bytes) -> dict[str, Any]:
    """The request's JSON object; 400 when it is not JSON or not an object."""
    document = parse_json(body)
    if not isinstance(document, dict):
        raise ApiError(400, "invalid_body",
                       f"request body must be a JSON object, got {type(document).__name__}")
    return document


def write_key_of(document: dict[str, Any]) -> str | None:
    """The `writeKey` a body carries (Segment's alternative to the Authorization header)."""
    key = document.get("writeKey")
    return key if isinstance(key, str) and key else None


def read_message(
    document: dict[str, Any], route: SegmentType, received_at: datetime, source: str | None = None
) -> Touchpoint:
    """One call to /v1/<route>; raises Rejection (status 400 or 413) when it is refused."""
    return _touchpoint(document, route, received_at, source, None, None)


def read_batch(
    document: dict[str, Any], received_at: datetime, source: str | None = None
) -> Intake[Touchpoint]:
    """A /v1/batch body: every message validated, the good ones kept even when others are refused.

    The batch's `context` merges under each message's and its `sentAt` stands in for a message's
    own. Raises ApiError for a bad envelope (400) or too many messages (413).
    """
    batch = document.get("batch")
    if not isinstance(batch, list):
        raise ApiError(400, "invalid_body", "batch: required, a JSON array of messages")
    if len(batch) > MAX_BATCH_MESSAGES:
        raise ApiError(413, "too_many_events",
                       f"batch has {len(batch)} messages; the limit is {MAX_BATCH_MESSAGES}")
    if not batch:
        raise ApiError(400, "no_valid_events", "batch is empty", rejected=[])
    context = document.get("context")
    if context is not None and not isinstance(context, dict):
        raise ApiError(400, "invalid_body", "context: must be a JSON object")
    sent_at = read_time(document.get("sentAt"))
    intake: Intake[Touchpoint] = Intake()
    for index, item in enumerate(batch):
        try:
            intake.accepted.append(_touchpoint(item, None, received_at, source, context, sent_at))
        except Rejection as exc:
            intake.reasons.append(exc.reason)
            intake.rejected.append({"index": index, "code": exc.code, "error": exc.message})
    return intake
