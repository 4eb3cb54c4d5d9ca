"""The stager's fast record decoding reads exactly what Touchpoint.from_json reads.

Every generated record, valid or hostile, must give the same fields through `decode_touchpoint`
as through pydantic, or the same error; records as ingest writes them must take the fast path.
"""

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import orjson
import pytest
from aiokafka import ConsumerRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from stageline_ingest.native.intake import read_events
from stageline_shared.contract.limits import MAX_DEPTH
from stageline_shared.contract.record import (
    Touchpoint,
    TouchpointFields,
    TouchpointRecord,
    decode_touchpoint,
    links,
)
from stageline_stager.dead_letter import Rejected, decode

RECEIVED = datetime(2026, 11, 24, 1, 2, 3, 456789, tzinfo=UTC)
FIELDS = list(Touchpoint.model_fields)

TRICKY = ["", " ", "a\x00b", "\\u0000", "ü ✓", "x" * 129, "x" * 201, "x" * 256, "c-1", "1e5", "1.1234567"]
TIMES = ["2026-01-31T12:00:00Z", "2026-01-31T09:00:00.5-03:00", "2026-02-01T12:00:00.123457Z",
         "2026-02-01T12:00:00.1234567Z", "2026-02-01T12:00:00.9999999Z", "2026-01-31T12:00:00",
         "2026-01-31 12:00:00Z", "2026-01-31t12:00:00z", "2026-01-31T12:00Z", "2026-01-31T12:00:00,5Z",
         "2026-02-30T00:00:00Z", "2026-01-31T24:00:00Z", "2026-01-31T23:59:60Z", "0001-01-01T00:00:00+01:00",
         "9999-12-31T23:59:59-01:00", "2026-01-31", "yesterday", "", "2026-01-31T12:00:00+0200"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6) | st.sampled_from(TRICKY),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
texts = st.sampled_from(TRICKY) | st.text(max_size=10)
optional_texts = st.none() | texts
valid = st.fixed_dictionaries(
    {"event_id": st.text(min_size=1, max_size=12), "customer_id": st.text(min_size=1, max_size=12),
     "event": st.text(min_size=1, max_size=12), "occurred_at": st.sampled_from(TIMES[:3]),
     "received_at": st.sampled_from(TIMES[:3])},
    optional={"v": st.just(1), "type": st.sampled_from(["track", "identify", "alias", "erase"]),
              "channel": optional_texts, "clamped": st.booleans(),
              "properties": st.dictionaries(st.text(max_size=4), json_values, max_size=4),
              "user_id": optional_texts, "anonymous_id": optional_texts, "previous_id": optional_texts,
              "group_id": optional_texts, "context": st.dictionaries(st.text(max_size=4), json_values, max_size=2),
              "source": optional_texts},
)
hostile = {
    "v": st.integers(-2, 3) | st.floats() | st.text(max_size=2) | st.booleans(),
    "type": st.sampled_from(["track", "TRACK", "erase", "", "x"]) | st.integers(0, 2),
    "event_id": texts | st.integers() | st.none(),
    "customer_id": texts | st.integers() | st.none(),
    "event": texts | st.lists(st.text(max_size=2), max_size=1),
    "channel": texts | st.integers(),
    "occurred_at": st.sampled_from(TIMES) | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False),
    "received_at": st.sampled_from(TIMES) | st.none(),
    "clamped": st.booleans() | st.integers(0, 2) | st.sampled_from(["true", "false", "yes"]),
    "properties": json_values,
    "context": json_values,
    "user_id": texts | st.integers(),
    "unknown": json_values,
}
records = st.one_of(
    valid,
    st.tuples(valid, st.sampled_from(sorted(hostile))).flatmap(
        lambda p: hostile[p[1]].map(lambda value: {**p[0], p[1]: value})),
    st.tuples(valid, st.sampled_from(["event_id", "customer_id", "event", "occurred_at", "received_at"]))
    .map(lambda p: {k: v for k, v in p[0].items() if k != p[1]}),
).map(lambda document: json.dumps(document, ensure_ascii=False).encode())  # big ints too


def fields(touchpoint: TouchpointFields) -> dict[str, Any]:
    """Every field, times with their offsets (equal instants in other zones are not the same)."""
    values = {name: getattr(touchpoint, name) for name in FIELDS}
    for name in ("occurred_at", "received_at"):
        values[name] = (values[name], values[name].utcoffset())
    return values


def through_pydantic(raw: bytes) -> dict[str, Any] | str:
    try:
        return fields(Touchpoint.from_json(raw))
    except ValueError as exc:
        return str(exc)


def through_wire(raw: bytes) -> dict[str, Any] | str:
    try:
        return fields(decode_touchpoint(raw))
    except ValueError as exc:
        return str(exc)


@settings(max_examples=1500)
@given(records)
def test_fast_decoding_reads_what_pydantic_reads(raw: bytes) -> None:
    assert through_wire(raw) == through_pydantic(raw)


@pytest.mark.parametrize("raw", [
    b"not json", b"[]", b"{}", b'{"event_id": "e"', b'{"a": NaN}', b'{"x": "\\ud800"}',
    orjson.dumps({"event_id": "e", "customer_id": "c", "event": "x", "occurred_at": TIMES[0],
                  "received_at": TIMES[0], "properties": {"n": 1e308}}).replace(b"1e308", b"1e400"),
    # More than microseconds: pydantic truncates them, msgspec would round them.
    *(orjson.dumps({"event_id": "e", "customer_id": "c", "event": "x", "occurred_at": time,
                    "received_at": TIMES[0]}) for time in TIMES[3:5]),
])
def test_broken_records_get_pydantics_answer(raw: bytes) -> None:
    assert through_wire(raw) == through_pydantic(raw)


def test_records_as_ingest_writes_them_take_the_fast_path() -> None:
    items: list[dict[str, Any]] = [
        {"customer_id": "c-1", "event": "Product Viewed"},
        {"event_id": "e-1", "customer_id": "tenant/ü-42", "event": "Zahlung läuft", "channel": "web",
         "occurred_at": "2026-01-31T09:00:00.25-03:00", "properties": {"sku": "A", "n": [1, 2.5, None, 2**63 - 1]}},
    ]
    for item in items:
        [record] = read_events(msgspec.json.encode(item), RECEIVED, "site").accepted
        decoded = decode_touchpoint(record.value)
        assert isinstance(decoded, TouchpointRecord)
        assert fields(decoded) == fields(Touchpoint.from_json(record.value))
        assert decoded.occurred_at.tzinfo is UTC  # times ingest writes come back in UTC


def test_links_read_either_kind() -> None:
    document = {"v": 1, "type": "alias", "event_id": "e", "customer_id": "u-1", "event": "Alias",
                "occurred_at": TIMES[0], "received_at": TIMES[0], "user_id": "u-1", "previous_id": "a-9",
                "anonymous_id": "a-1"}
    raw = orjson.dumps(document)
    assert isinstance(decode_touchpoint(raw), TouchpointRecord)
    assert links(decode_touchpoint(raw)) == links(Touchpoint.from_json(raw)) == [("a-1", "u-1"), ("a-9", "u-1")]


def test_offsets_other_than_utc_are_kept() -> None:
    raw = orjson.dumps({"event_id": "e", "customer_id": "c", "event": "x",
                        "occurred_at": "2026-01-31T09:00:00+02:00", "received_at": TIMES[0]})
    decoded = decode_touchpoint(raw)
    assert decoded.occurred_at == datetime(2026, 1, 31, 7, tzinfo=UTC)
    assert decoded.occurred_at.utcoffset() == timezone(timedelta(hours=2)).utcoffset(None)


@pytest.mark.parametrize("field", ["properties", "context"])
def test_records_nested_deeper_than_ingest_accepts_are_refused(field: str) -> None:
    """A record from another producer, nested past MAX_DEPTH (or past what a decoder can follow),
    is refused by name, to the dead-letter topic, never a RecursionError failing its batch."""
    def record(levels: int) -> bytes:  # `field` nests `levels` deep, itself the first
        return (b'{"v":1,"type":"track","event_id":"e","customer_id":"c","event":"x","occurred_at":"2026-01-01T00:00:00Z",'
                b'"received_at":"2026-01-01T00:00:00Z","' + field.encode() + b'":{"a":'
                + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}}")

    assert isinstance(decode_touchpoint(record(MAX_DEPTH)), TouchpointRecord)
    with pytest.raises(ValueError, match=f"{field} nests objects and arrays more than {MAX_DEPTH} levels"):
        decode_touchpoint(record(MAX_DEPTH + 1))
    with pytest.raises(ValueError, match="record is not valid JSON, or nests too deeply to decode"):
        decode_touchpoint(record(5000))


def test_invalid_utf8_in_a_record_is_refused_as_undecodable() -> None:
    raw = (b'{"event_id":"e","customer_id":"c\xff","event":"x","occurred_at":"2026-01-01T00:00:00Z",'
           b'"received_at":"2026-01-01T00:00:00Z"}')
    with pytest.raises(ValueError, match=r"record is not valid UTF-8 \(at byte 32\)"):
        decode_touchpoint(raw)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff\xfe\x00 not json at all", "undecodable"),
        (b'{"customer_id": "c", "event": ' + b"[" * 5000, "undecodable"),
        (b'{"event_id":"e","customer_id":"c","event":"x"}', "contract"),
    ],
)
def test_dead_letter_reason_follows_the_kind_of_problem_not_its_wording(value: bytes, reason: str) -> None:
    record = ConsumerRecord("t", 0, 7, 0, 0, b"c", value, None, len(b"c"), len(value), ())
    rejected = decode(record)
    assert isinstance(rejected, Rejected)
    assert rejected.reason == reason
