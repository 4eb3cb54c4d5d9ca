"""Ingest's hot path gives exactly what the pydantic path gives: same records, same rejections.

msgspec decodes and encodes plainly valid events without the models (stageline_ingest.native.plain) and
`partition_of` (murmurhash2's C murmur2) replaces aiokafka's partitioner; both are checked against
the originals over generated, often hostile, input.
"""

import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from stageline_ingest.batcher import partition_of
from stageline_ingest.native.intake import read_events
from stageline_ingest.native.plain import as_plain, decode_plain, plain_records, text_is_plain
from stageline_shared.contract.client_event import TouchpointIn, stamp
from stageline_shared.contract.limits import MAX_DEPTH, MAX_EVENT_BYTES
from stageline_shared.contract.record import Touchpoint, WireRecord
from stageline_shared.wording import describe_validation_error

RECEIVED = datetime(2026, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)

TRICKY = ["", " ", "\t", "\xa0", "a\x00b", "a\nb", "a\x7fb", "\u202ertl", "ü ✓/x", "\\u0000", "x" * 51,
          "x" * 129, "x" * 201, "x" * 256, "c-1", "Product Viewed"]
TIMES = ["2026-01-31T12:00:00Z", "2026-01-31T09:00:00.5-03:00", "2026-02-01T12:00:00.123457Z",
         "2026-02-01T12:00:00.123456Z", "2099-01-01T00:00:00+00:00", "2026-01-31T12:00:00",
         "2026-01-31", "yesterday", "", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
         "2026-01-31T12:00:00" + "0" * 60 + "Z"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8) | st.sampled_from(TRICKY),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4) | st.sampled_from(TRICKY),
                                                                  inner, max_size=3),
    max_leaves=8,
)
texts = st.sampled_from(TRICKY) | st.text(max_size=12)
numbers = st.integers()
hostile = {
    "event_id": st.none() | texts | numbers,
    "customer_id": texts | numbers | st.none(),
    "event": texts | st.lists(st.text(max_size=2), max_size=1),
    "channel": st.none() | texts,
    "occurred_at": st.none() | st.sampled_from(TIMES) | numbers,
    "properties": st.none() | json_values,
    "custmer_id": st.just("typo"),
}
names = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=12)
plain = st.fixed_dictionaries(
    {"customer_id": names, "event": names},
    optional={"event_id": names | st.none(), "channel": names | st.none(),
              "occurred_at": st.sampled_from(TIMES[:5]) | st.none(),
              "properties": st.dictionaries(st.text(max_size=4), json_values, max_size=4)},
)
# Plain events, plain events with one field made hostile (or removed), and anything at all.
events = st.one_of(
    plain,
    st.tuples(plain, st.sampled_from(sorted(hostile))).flatmap(
        lambda p: hostile[p[1]].map(lambda value: {**p[0], p[1]: value})),
    st.tuples(plain, st.sampled_from(["customer_id", "event"])).map(
        lambda p: {k: v for k, v in p[0].items() if k != p[1]}),
    st.fixed_dictionaries({}, optional=hostile),
).map(lambda item: msgspec.json.decode(msgspec.json.encode(item)))  # as a request body gives it


def fast_record(item: dict[str, Any]) -> WireRecord | None:
    """The hot path for one decoded event: its record, or None to send it to pydantic."""
    plain = as_plain(item)
    records = None if plain is None else plain_records([plain], RECEIVED, "site", max_bytes=sys.maxsize)
    return records[0] if records else None


def reference(item: Any) -> WireRecord | str:
    """The pydantic path alone: the record, or the error message."""
    try:
        return stamp(TouchpointIn.model_validate(item), RECEIVED, "site").to_record()
    except ValidationError as exc:
        return describe_validation_error(exc)


def without_generated_id(record: WireRecord) -> dict[str, Any]:
    """The record less its event id, which must be a fresh UUID (events sent without one)."""
    decoded = msgspec.json.decode(record.value)
    assert uuid.UUID(decoded.pop("event_id")) == uuid.UUID(record.event_id)
    return {"key": record.key, "value": decoded, "clamped": record.clamped}


@settings(max_examples=600)
@given(events)
def test_plain_encoding_is_the_pydantic_record(item: dict[str, Any]) -> None:
    record = fast_record(item)
    expected = reference(item)
    if record is None:
        return  # the caller falls back to the pydantic path
    assert isinstance(expected, WireRecord), f"fast path accepted what pydantic refuses: {expected}"
    if item.get("event_id"):
        assert record == expected
    else:
        assert without_generated_id(record) == without_generated_id(expected)
    assert Touchpoint.from_json(record.value).event_id == record.event_id


@settings(max_examples=200)
@given(st.lists(events, min_size=1, max_size=8))
def test_read_events_matches_the_pydantic_path(batch: list[dict[str, Any]]) -> None:
    for item in batch:
        item["event_id"] = item.get("event_id") or f"id-{id(item)}"
    intake = read_events(msgspec.json.encode({"batch": batch}), RECEIVED, "site")
    accepted = []
    rejected = []
    for index, item in enumerate(batch):
        size = len(msgspec.json.encode(item))
        outcome = reference(item) if size <= MAX_EVENT_BYTES else \
            f"event is {size} bytes; the limit is {MAX_EVENT_BYTES}"
        if isinstance(outcome, WireRecord):
            accepted.append(outcome)
        else:
            rejected.append({"index": index, "error": outcome})
    assert intake.accepted == accepted
    assert intake.rejected == rejected


def test_plain_events_take_the_fast_path() -> None:
    items: list[dict[str, Any]] = [
        {"customer_id": "c-1", "event": "Product Viewed"},
        {"event_id": "e-1", "customer_id": "tenant/ü-42", "event": "Zahlung läuft", "channel": "web",
         "occurred_at": "2026-01-31T09:00:00-03:00", "properties": {"sku": "A", "n": [1, 2.5, None]}},
        {"customer_id": "c", "event": "x", "occurred_at": "2099-01-01T00:00:00Z", "properties": {}},
    ]
    assert decode_plain(msgspec.json.encode({"batch": items})) == [as_plain(item) for item in items]
    for item in items:
        record = fast_record(item)
        assert record is not None, item
        expected = reference(item)
        assert isinstance(expected, WireRecord)
        if "event_id" in item:
            assert record == expected
        else:
            assert without_generated_id(record) == without_generated_id(expected)


@pytest.mark.parametrize("code", [*range(0x20), 0x7F])
def test_no_control_character_passes_the_body_check(code: int) -> None:
    """Events skip their own control-character and NUL checks only when `text_is_plain` clears
    the body: a control character in a string, written raw or escaped, never gets past both."""
    char = chr(code)
    event = {"event_id": "e-1", "customer_id": f"c{char}1", "event": "x", "properties": {char: char}}
    raw = b'{"batch": [{"customer_id": "c' + char.encode() + b'1", "event": "x"}]}'
    for body in (msgspec.json.encode({"batch": [event]}), orjson.dumps({"batch": [event]}), raw):
        assert decode_plain(body) is None or not text_is_plain(body), body
    intake = read_events(msgspec.json.encode({"batch": [event]}), RECEIVED, "site")
    assert intake.accepted == [] and intake.reasons == ["invalid"]


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=64))
def test_partitions_are_kafkas(key: bytes, count: int) -> None:
    partitions = list(range(count))
    assert partition_of(key, partitions) == DefaultPartitioner()(key, partitions, partitions)


def test_the_size_limit_is_on_the_event_as_sent() -> None:
    """The limit counts the event's own JSON, not the larger record Stageline writes for it."""
    def event_of(size: int) -> dict[str, Any]:
        item = {"event_id": "e-1", "customer_id": "c-1", "event": "Product Viewed", "properties": {"p": ""}}
        item["properties"] = {"p": "x" * (size - len(msgspec.json.encode(item)))}
        assert len(msgspec.json.encode(item)) == size
        return item

    at_limit, over = event_of(MAX_EVENT_BYTES), event_of(MAX_EVENT_BYTES + 1)
    intake = read_events(msgspec.json.encode({"batch": [at_limit, over]}), RECEIVED, "site")
    assert intake.accepted == [reference(at_limit)]
    assert len(intake.accepted[0].value) > MAX_EVENT_BYTES  # the record is larger than the limit
    assert intake.rejected == [
        {"index": 1, "error": f"event is {MAX_EVENT_BYTES + 1} bytes; the limit is {MAX_EVENT_BYTES}"}
    ]
    assert intake.reasons == ["too_large"]


def nested(levels: int) -> dict[str, Any]:
    """Properties whose objects and arrays nest `levels` deep (the properties object is the first)."""
    value: Any = 1
    for level in range(levels - 1):
        value = [value] if level % 2 else {"k": value}
    return {"p": value}


def test_properties_nest_at_most_max_depth_levels() -> None:
    deepest, too_deep = nested(MAX_DEPTH), nested(MAX_DEPTH + 1)
    events = [{"event_id": f"e-{n}", "customer_id": "c-1", "event": "Viewed", "properties": p}
              for n, p in enumerate([deepest, too_deep])]
    assert fast_record(events[0]) == reference(events[0])
    assert fast_record(events[1]) is None
    intake = read_events(msgspec.json.encode({"batch": events}), RECEIVED, "site")
    assert intake.accepted == [reference(events[0])]
    assert intake.rejected == [
        {"index": 1, "error": f"properties: properties nests objects and arrays more than {MAX_DEPTH} "
                              "levels deep"}
    ]
