"""Touchpoint's wire format: JSON round trips, and the records from_json refuses."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from stageline_shared.contract.client_event import TouchpointIn, stamp
from stageline_shared.contract.record import Touchpoint
from tests.fixtures.client_event import RECEIVED, event


def test_json_round_trip() -> None:
    touchpoint = Touchpoint(
        event_id="evt-1",
        customer_id="cust-1",
        event="Order Completed",
        channel="web",
        occurred_at=datetime(2026, 1, 30, 8, 15, 30, 123456, tzinfo=UTC),
        received_at=RECEIVED,
        clamped=True,
        properties={"total": 12.5, "items": [{"sku": "A", "qty": 2}], "gift": False, "note": None,
                    "unicode": "héllo ✓"},
    )
    raw = touchpoint.to_json()

    assert isinstance(raw, bytes)
    decoded = orjson.loads(raw)
    assert decoded["v"] == 1
    assert decoded["event_id"] == "evt-1"
    back = Touchpoint.from_json(raw)
    assert back == touchpoint
    assert back.occurred_at.utcoffset() == timedelta(0)


def test_json_round_trip_of_stamped_event() -> None:
    incoming = TouchpointIn.model_validate(event(occurred_at="2026-01-31T09:00:00-03:00"))
    touchpoint = stamp(incoming, RECEIVED)
    assert Touchpoint.from_json(touchpoint.to_json()) == touchpoint


def test_json_round_trip_keeps_instant_in_other_offset() -> None:
    offset = timezone(timedelta(hours=5, minutes=30))
    touchpoint = Touchpoint(
        event_id="e", customer_id="c", event="x",
        occurred_at=datetime(2026, 1, 31, 17, 30, tzinfo=offset), received_at=RECEIVED,
    )
    back = Touchpoint.from_json(touchpoint.to_json())
    assert back.occurred_at == RECEIVED
    assert back == touchpoint


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"null",
        b"{}",
        b'{"event_id": "e", "customer_id": "c", "event": "x", "occurred_at": "yesterday",'
        b' "received_at": "2026-01-31T12:00:00Z"}',
        b'{"event_id": "e", "customer_id": "c", "event": "x", "occurred_at": "2026-01-31T12:00:00",'
        b' "received_at": "2026-01-31T12:00:00Z"}',
    ],
    ids=["empty", "text", "binary", "list", "null", "empty-object", "bad-time", "naive-time"],
)
def test_from_json_garbage_raises_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError, match=r".+") as info:
        Touchpoint.from_json(raw)
    assert not isinstance(info.value, ValidationError)


def test_from_json_error_names_missing_fields() -> None:
    with pytest.raises(ValueError) as info:
        Touchpoint.from_json(b'{"event_id": "e"}')
    message = str(info.value)
    for field in ("customer_id", "event", "occurred_at", "received_at"):
        assert f"{field}: required" in message


_WIRE = {"event_id": "e-1", "customer_id": "c-1", "event": "Ad Clicked",
         "occurred_at": "2026-01-01T00:00:00Z", "received_at": "2026-01-01T00:00:00Z"}


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"customer_id": "c\x00"}, "customer_id"),
        ({"event": "E\x00"}, "event"),
        ({"user_id": "u\x00", "anonymous_id": "a"}, "user_id"),
        ({"source": "\x00"}, "source"),
        ({"properties": {"note": ["ok", "a\x00b"]}}, "properties.note[1]"),
        ({"context": {"k\x00": 1}}, "context key"),
    ],
)
def test_a_wire_record_with_a_nul_is_refused(fields: dict[str, Any], where: str) -> None:
    """Records from other producers too: Postgres cannot store a NUL, so the stager refuses it."""
    with pytest.raises(ValueError, match=r"contains a NUL character \(U\+0000\)") as refused:
        Touchpoint.from_json(orjson.dumps({**_WIRE, **fields}))
    assert str(refused.value).startswith(where)


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul() -> None:
    touchpoint = Touchpoint.from_json(orjson.dumps({**_WIRE, "properties": {"p": "\\u0000"}}))
    assert touchpoint.properties == {"p": "\\u0000"}
