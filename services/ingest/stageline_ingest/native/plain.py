"""Plainly valid /v1/events bodies, decoded and encoded by msgspec alone, without the models.

msgspec checks types, lengths and unknown fields while it decodes a request body, in C; what it
cannot check (blank values, control characters, nesting depth, timestamps, NULs) `plain_records`
checks; control characters and NULs once per body when `text_is_plain` clears it. None anywhere
means "in doubt": the caller then takes the pydantic path, which names the problem.
For every event a record is returned for, the record is byte for byte
`stamp(TouchpointIn.model_validate(item), received_at, source).to_record()` (UUIDs aside),
as tests/ingest/test_native_plain.py checks.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from stageline_shared.contract.checks import CONTROL_CHARACTERS, NUL_ESCAPED, nests_deeper
from stageline_shared.contract.client_event import PlainBatch, PlainEvent, new_event_id
from stageline_shared.contract.limits import MAX_EVENT_BYTES, MAX_FUTURE_SKEW, WIRE_VERSION
from stageline_shared.contract.record import UNDECODABLE, TouchpointRecord, WireRecord, encode_json

_BATCH = msgspec.json.Decoder(PlainBatch)
_EVENT = msgspec.json.Decoder(PlainEvent)


def decode_plain(body: bytes) -> list[PlainEvent] | None:
    """The events of a body (`{"batch": [...]}` or one event) if msgspec finds each plain, else None."""
    try:
        return _BATCH.decode(body).batch
    except UNDECODABLE:
        pass
    try:
        return [_EVENT.decode(body)]
    except UNDECODABLE:
        return None


def as_plain(item: Any) -> PlainEvent | None:
    """One decoded event as a PlainEvent, or None when msgspec refuses it."""
    try:
        return msgspec.convert(item, PlainEvent)
    except (msgspec.ValidationError, RecursionError):
        return None


def text_is_plain(body: bytes) -> bool:
    """Is every string decoded from this JSON body free of control characters (and so of NULs)?

    msgspec refuses raw characters below U+0020 in a string, so such a character in a decoded
    string came from an escape, which starts with a backslash; U+007F may stand raw. Two byte
    searches of the body spare `plain_records` two checks of every event (~7% of ingest's CPU).
    """
    return b"\\" not in body and b"\x7f" not in body


def plain_records(events: Sequence[PlainEvent], received_at: datetime, source: str | None = None,
                  text_checked: bool = False, max_bytes: int = MAX_EVENT_BYTES) -> list[WireRecord] | None:
    """The wire records of plain events, or None when any is in any doubt or its record is longer
    than `max_bytes` (the pydantic path decides).

    `text_checked`: their body passed `text_is_plain`, so their strings need no control-character
    or NUL check. One loop over a body's events: a call per event cost ~3% of ingest's CPU."""
    records = []
    latest = received_at + MAX_FUTURE_SKEW
    for event in events:
        customer_id, name, event_id, channel = event.customer_id, event.event, event.event_id, event.channel
        if (customer_id.isspace() or name.isspace() or (event_id is not None and event_id.isspace())
                or (channel is not None and channel.isspace())):
            return None
        if not text_checked:
            names = customer_id + name + (event_id or "") + (channel or "")
            # isprintable() is False for every control character, and for some allowed characters,
            # which the pattern then clears.
            if not names.isprintable() and CONTROL_CHARACTERS.search(names):
                return None
        properties = event.properties
        if properties and nests_deeper(properties):
            return None
        occurred_at = received_at
        clamped = False
        if event.occurred_at is not None:
            try:
                occurred_at = datetime.fromisoformat(event.occurred_at)
                if occurred_at.tzinfo is not UTC:  # most clients send UTC
                    if occurred_at.tzinfo is None:
                        return None
                    occurred_at = occurred_at.astimezone(UTC)
            except (ValueError, OverflowError):
                return None
            if occurred_at > latest:
                occurred_at, clamped = received_at, True
        if event_id is None:
            event_id = new_event_id()
        value = encode_json(TouchpointRecord(v=WIRE_VERSION, type="track", event_id=event_id,
                                             customer_id=customer_id, event=name, channel=channel,
                                             occurred_at=occurred_at, received_at=received_at,
                                             clamped=clamped, properties=properties, source=source))
        # The value holds every string of the event, and JSON writes a NUL, in a key or a value,
        # only as this escape.
        if (not text_checked and NUL_ESCAPED in value) or len(value) > max_bytes:
            return None
        records.append(WireRecord(customer_id.encode(), value, event_id, clamped))
    return records
