"""Segment HTTP Tracking API messages → touchpoints (pure: no I/O).

Each Segment call (track, identify, page, screen, group, alias) becomes one Touchpoint keyed by
userId when present, else anonymousId. Segment's own limits apply: 32 KB a message, 500 KB a
request, 2,500 messages a batch.
"""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

import msgspec
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from stageline_ingest.body import parse_json
from stageline_ingest.intake import Intake
from stageline_shared.errors import ApiError
from stageline_shared.events import (
    MAX_FUTURE_SKEW,
    Touchpoint,
    new_event_id,
    parse_timestamp,
    require_printable,
    require_storable,
)
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


def _id_to_str(value: Any) -> str:
    """Segment ids may be strings or numbers; numbers become strings (42 → "42")."""
    if isinstance(value, bool):
        raise ValueError("must be a string or a number")  # noqa: TRY004
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise ValueError("must be a string or a number")  # noqa: TRY004
    return value


def _empty_is_absent(value: Any) -> Any:
    """RudderStack's JavaScript SDK sends `"userId": ""` on every call before identify: no user."""
    return None if value == "" else value


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 string with a UTC offset")  # noqa: TRY004
    if len(value) > 64:
        raise ValueError("is longer than 64 characters")
    return parse_timestamp(value)


SegmentId = Annotated[
    str, Field(min_length=1, max_length=255), BeforeValidator(_id_to_str), AfterValidator(_printable)
]
MessageId = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_printable)]
EventName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_printable)]
Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]
JsonObject = dict[str, Any] | None


class SegmentMessage(BaseModel):
    """The fields of a Segment message Stageline reads; others (_metadata, library, …) are ignored.

    Attribute names are Segment's JSON names, so validation errors name the field the client sent.
    """

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    userId: Annotated[SegmentId | None, BeforeValidator(_empty_is_absent)] = None
    anonymousId: SegmentId | None = None
    previousId: SegmentId | None = None
    groupId: SegmentId | None = None
    messageId: MessageId | None = None
    event: EventName | None = None
    name: str | None = None
    category: str | None = None
    properties: JsonObject = None
    traits: JsonObject = None
    context: JsonObject = None
    integrations: JsonObject = None
    timestamp: Timestamp | None = None
    originalTimestamp: Timestamp | None = None
    sentAt: Timestamp | None = None


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

    An explicit timestamp wins. Otherwise originalTimestamp is the device's clock, and sentAt the
    same clock at sending: the device's offset from ours is sentAt - receivedAt, so the event
    happened at receivedAt - (sentAt - originalTimestamp). Raises OverflowError out of range.
    """
    if timestamp is not None:
        moment = timestamp
    elif original is not None and sent_at is not None:
        moment = received_at - (sent_at - original)
    elif original is not None:
        moment = original
    else:
        moment = received_at
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
    if kind == "group" and message.groupId is None:
        raise Rejection("groupId: required for group")
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
    if len(channel) > 50:
        raise Rejection("context.channel: is longer than 50 characters")
    try:
        return _printable(channel)
    except ValueError as exc:
        raise Rejection(f"context.channel: {exc}") from None


def _kind(item: dict[str, Any], route: SegmentType | None) -> SegmentType:
    declared = item.get("type")
    if route is not None:
        if declared is not None and declared != route:
            raise Rejection(f"type: {str(declared)[:40]!r} does not match the route /v1/{route}")
        return route
    for kind in TYPES:
        if declared == kind:
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
    sent_at = None
    if document.get("sentAt") is not None:
        try:
            sent_at = _timestamp(document["sentAt"])
        except ValueError as exc:
            raise ApiError(400, "invalid_body", f"sentAt: {exc}") from None
    intake: Intake[Touchpoint] = Intake()
    for index, item in enumerate(batch):
        try:
            intake.accepted.append(_touchpoint(item, None, received_at, source, context, sent_at))
        except Rejection as exc:
            intake.reasons.append(exc.reason)
            intake.rejected.append({"index": index, "code": exc.code, "error": exc.message})
    return intake
