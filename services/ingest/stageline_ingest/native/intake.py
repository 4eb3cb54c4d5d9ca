"""Reading a /v1/events body: accepted wire records and per-index rejections (no I/O)."""

import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec
from pydantic import ValidationError

from stageline_ingest.body import parse_json
from stageline_ingest.native.plain import as_plain, decode_plain, plain_records, text_is_plain
from stageline_ingest.outcome import Intake
from stageline_shared.contract.client_event import TouchpointIn, stamp
from stageline_shared.contract.limits import MAX_BATCH_EVENTS, MAX_EVENT_BYTES
from stageline_shared.contract.record import WireRecord
from stageline_shared.errors import ApiError
from stageline_shared.wording import describe_validation_error


def _items(body: bytes) -> tuple[list[Any], bool]:
    """The request's events and whether it was a batch; raises ApiError for a bad envelope."""
    document = parse_json(body)
    if not isinstance(document, dict):
        raise ApiError(
            400, "invalid_body",
            f"request body must be a JSON object (one event or {{\"batch\": [...]}}), "
            f"got {type(document).__name__}",
        )
    if "batch" not in document:
        return [document], False
    batch = document["batch"]
    if len(document) > 1:
        others = ", ".join(sorted(k for k in document if k != "batch"))
        raise ApiError(400, "invalid_body", f"a batch body takes only \"batch\"; unexpected: {others}")
    if not isinstance(batch, list):
        raise ApiError(400, "invalid_body", "batch must be a JSON array of events")
    if not batch:
        raise ApiError(422, "no_valid_events", "batch is empty")
    if len(batch) > MAX_BATCH_EVENTS:
        raise ApiError(
            413, "too_many_events", f"batch has {len(batch)} events; the limit is {MAX_BATCH_EVENTS}"
        )
    return batch, True


def _validate(item: Any, received_at: datetime, source: str | None) -> WireRecord | tuple[str, str]:
    if not isinstance(item, dict):
        return "invalid", f"event must be a JSON object, got {type(item).__name__}"
    plain = as_plain(item)
    records = None if plain is None else plain_records([plain], received_at, source, max_bytes=sys.maxsize)
    record = records[0] if records else None
    # A plain event's own JSON is shorter than its record, which adds the fields Stageline stamps
    # (received_at, type, …): only a larger record needs the event measured.
    if record is not None and len(record.value) <= MAX_EVENT_BYTES:
        return record
    size = len(msgspec.json.encode(item))
    if size > MAX_EVENT_BYTES:
        return "too_large", f"event is {size} bytes; the limit is {MAX_EVENT_BYTES}"
    if record is not None:
        return record
    # Not plainly valid: pydantic decides, and names the problem when there is one.
    try:
        event = TouchpointIn.model_validate(item)
    except ValidationError as exc:
        return "invalid", describe_validation_error(exc)
    return stamp(event, received_at, source).to_record()


# What POST /v1/events reads a body with: `read_events`, unless the app is made with another.
ReadEvents = Callable[[bytes, datetime, str | None], Intake[WireRecord]]


def read_events(body: bytes, received_at: datetime, source: str | None = None) -> Intake[WireRecord]:
    """Validate every event; the good ones are kept even when others are rejected.

    A body whose events are all plainly valid is decoded and encoded by msgspec alone; any other
    is taken apart event by event, and each event in doubt goes to pydantic, which names the
    problem.
    """
    events = decode_plain(body)
    if events is not None:
        records = plain_records(events, received_at, source, text_is_plain(body))
        if records is not None:
            return Intake(accepted=records)
    items, is_batch = _items(body)
    intake: Intake[WireRecord] = Intake()
    for index, item in enumerate(items):
        result = _validate(item, received_at, source)
        if isinstance(result, WireRecord):
            intake.accepted.append(result)
        else:
            reason, message = result
            intake.reasons.append(reason)
            intake.rejected.append({"index": index, "error": message} if is_batch else
                                   {"index": 0, "error": message})
    return intake
