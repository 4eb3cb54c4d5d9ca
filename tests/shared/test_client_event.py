"""The touchpoint contract: what TouchpointIn accepts, how stamp completes it, the wire format."""

import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from stageline_shared.contract.client_event import TouchpointIn, stamp
from stageline_shared.contract.limits import MAX_FUTURE_SKEW
from stageline_shared.contract.record import Touchpoint
from stageline_shared.wording import describe_validation_error

RECEIVED = datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC)


def _event(**fields: Any) -> dict[str, Any]:
    return {"customer_id": "cust-1", "event": "Product Viewed", **fields}


def _rejected(**fields: Any) -> str:
    with pytest.raises(ValidationError) as info:
        TouchpointIn.model_validate(_event(**fields))
    return describe_validation_error(info.value)


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- stamp ----------------------------------------------------------------------------------------


def test_event_id_assigned_when_missing() -> None:
    first = stamp(TouchpointIn.model_validate(_event()), RECEIVED)
    second = stamp(TouchpointIn.model_validate(_event()), RECEIVED)

    assert uuid.UUID(first.event_id)
    assert first.event_id != second.event_id


def test_assigned_event_ids_are_time_ordered_uuid7() -> None:
    """Sorted as made (new touchpoints append to the primary-key index), and RFC 9562's layout:
    version 7, the RFC's variant, the time of making in the leading 48 bits."""
    before = int(time.time() * 1000)
    ids = [stamp(TouchpointIn.model_validate(_event()), RECEIVED).event_id for _ in range(2000)]
    after = int(time.time() * 1000)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for value in (uuid.UUID(ids[0]), uuid.UUID(ids[-1])):
        assert (value.version, value.variant) == (7, uuid.RFC_4122)
        assert before <= value.int >> 80 <= after


def test_event_id_kept_when_given() -> None:
    touchpoint = stamp(TouchpointIn.model_validate(_event(event_id="evt-42")), RECEIVED)
    assert touchpoint.event_id == "evt-42"


def test_stamp_copies_fields() -> None:
    incoming = TouchpointIn.model_validate(
        _event(channel="web", properties={"sku": "A-1", "price": 9.5, "tags": ["x"]})
    )
    touchpoint = stamp(incoming, RECEIVED)

    assert touchpoint.customer_id == "cust-1"
    assert touchpoint.event == "Product Viewed"
    assert touchpoint.channel == "web"
    assert touchpoint.properties == {"sku": "A-1", "price": 9.5, "tags": ["x"]}
    assert touchpoint.received_at == RECEIVED
    assert touchpoint.v == 1


def test_occurred_at_defaults_to_received_at() -> None:
    touchpoint = stamp(TouchpointIn.model_validate(_event()), RECEIVED)

    assert touchpoint.occurred_at == RECEIVED
    assert touchpoint.clamped is False


def test_occurred_at_in_the_past_is_kept() -> None:
    earlier = RECEIVED - timedelta(days=30)
    touchpoint = stamp(TouchpointIn.model_validate(_event(occurred_at=_rfc3339(earlier))), RECEIVED)

    assert touchpoint.occurred_at == earlier
    assert touchpoint.clamped is False


def test_occurred_at_offset_is_normalised_to_utc() -> None:
    touchpoint = stamp(
        TouchpointIn.model_validate(_event(occurred_at="2026-01-31T13:30:00+02:00")), RECEIVED
    )

    assert touchpoint.occurred_at == datetime(2026, 1, 31, 11, 30, tzinfo=UTC)
    assert touchpoint.occurred_at.utcoffset() == timedelta(0)


def test_more_than_24h_in_the_future_is_clamped_and_flagged() -> None:
    future = RECEIVED + MAX_FUTURE_SKEW + timedelta(seconds=1)
    touchpoint = stamp(TouchpointIn.model_validate(_event(occurred_at=_rfc3339(future))), RECEIVED)

    assert touchpoint.clamped is True
    assert touchpoint.occurred_at == RECEIVED


def test_far_future_is_clamped() -> None:
    touchpoint = stamp(
        TouchpointIn.model_validate(_event(occurred_at="2099-01-01T00:00:00Z")), RECEIVED
    )
    assert touchpoint.clamped is True
    assert touchpoint.occurred_at == RECEIVED


def test_exactly_24h_in_the_future_is_not_clamped() -> None:
    future = RECEIVED + timedelta(hours=24)
    touchpoint = stamp(TouchpointIn.model_validate(_event(occurred_at=_rfc3339(future))), RECEIVED)

    assert touchpoint.clamped is False
    assert touchpoint.occurred_at == future


def test_future_within_skew_in_other_offset_is_not_clamped() -> None:
    # 2026-02-01T13:00+02:00 is 23h after RECEIVED.
    touchpoint = stamp(
        TouchpointIn.model_validate(_event(occurred_at="2026-02-01T13:00:00+02:00")), RECEIVED
    )
    assert touchpoint.clamped is False
    assert touchpoint.occurred_at == RECEIVED + timedelta(hours=23)


# --- TouchpointIn validation ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["2026-01-31T12:00:00Z", "2026-01-31T12:00:00.123456+05:30",
                                   "2026-01-31T12:00:00-08:00"])
def test_occurred_at_with_offset_accepted(value: str) -> None:
    assert TouchpointIn.model_validate(_event(occurred_at=value)).occurred_at == value


@pytest.mark.parametrize("value", ["2026-01-31T12:00:00", "2026-01-31"])
def test_occurred_at_without_offset_rejected(value: str) -> None:
    message = _rejected(occurred_at=value)
    assert "occurred_at" in message
    assert "UTC offset" in message


@pytest.mark.parametrize("value", ["yesterday", "", "2026-13-01T00:00:00Z"])
def test_occurred_at_garbage_rejected(value: str) -> None:
    message = _rejected(occurred_at=value)
    assert "occurred_at" in message
    assert "not an RFC 3339 timestamp" in message


def test_occurred_at_too_long_rejected() -> None:
    assert "occurred_at" in _rejected(occurred_at="2026-01-31T12:00:00" + "0" * 60 + "Z")


@pytest.mark.parametrize("field", ["customer_id", "event", "event_id", "channel"])
def test_nul_in_text_field_rejected(field: str) -> None:
    message = _rejected(**{field: "ab\x00c"})
    assert field in message
    assert "contains a control character (U+0000)" in message


@pytest.mark.parametrize("field", ["customer_id", "event", "event_id", "channel"])
@pytest.mark.parametrize(
    ("char", "code"),
    [("\x01", "U+0001"), ("\n", "U+000A"), ("\t", "U+0009"), ("\r", "U+000D"),
     ("\x1b", "U+001B"), ("\x1f", "U+001F"), ("\x7f", "U+007F")],
)
def test_control_character_in_text_field_rejected(field: str, char: str, code: str) -> None:
    message = _rejected(**{field: f"a{char}b"})
    assert field in message
    assert f"contains a control character ({code})" in message


@pytest.mark.parametrize("field", ["customer_id", "event", "event_id", "channel"])
@pytest.mark.parametrize("char", ["\ud800", "\udfff"])
def test_lone_surrogate_in_text_field_rejected(field: str, char: str) -> None:
    """No JSON body carries one past ingest, but a server may decode a URL into one: refused by
    the length check, which the API's path parameters share."""
    assert _rejected(**{field: f"a{char}b"}) == f"{field}: must be valid Unicode (no lone surrogates)"


def test_printable_unicode_and_slash_accepted() -> None:
    incoming = TouchpointIn.model_validate(_event(customer_id="tenant/ü-42 ✓", event="Zahlung läuft"))
    assert incoming.customer_id == "tenant/ü-42 ✓"


def test_control_characters_other_than_nul_allowed_in_properties() -> None:
    incoming = TouchpointIn.model_validate(_event(properties={"note": "line 1\nline 2\t\x7f"}))
    assert incoming.properties == {"note": "line 1\nline 2\t\x7f"}


@pytest.mark.parametrize(
    ("properties", "path"),
    [
        ({"note": "a\x00b"}, "properties.note"),
        ({"outer": {"inner": ["ok", "bad\x00"]}}, "properties.outer.inner[1]"),
        ({"list": [{"deep": "\x00"}]}, "properties.list[0].deep"),
        ({"k\x00ey": 1}, "properties key"),
    ],
    ids=["top", "nested-list", "dict-in-list", "key"],
)
def test_nul_in_properties_rejected(properties: dict[str, Any], path: str) -> None:
    message = _rejected(properties=properties)
    assert "NUL" in message
    assert path in message


@pytest.mark.parametrize("field", ["customer_id", "event", "event_id", "channel"])
@pytest.mark.parametrize("value", ["", "   "])
def test_empty_or_blank_text_rejected(field: str, value: str) -> None:
    assert field in _rejected(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("customer_id", 123),
        ("customer_id", None),
        ("event", 1.5),
        ("event_id", 7),
        ("channel", ["web"]),
        ("occurred_at", datetime(2026, 1, 31, tzinfo=UTC)),
        ("occurred_at", 1769860800),
        ("properties", ["a"]),
        ("properties", "x"),
    ],
)
def test_wrong_types_rejected(field: str, value: Any) -> None:
    assert field in _rejected(**{field: value})


def test_wrong_type_rejected_from_json_too() -> None:
    with pytest.raises(ValidationError) as info:
        TouchpointIn.model_validate_json(orjson.dumps({"customer_id": 123, "event": "x"}))
    assert "customer_id" in str(info.value)


@pytest.mark.parametrize("field", ["customer_id", "event"])
def test_required_fields(field: str) -> None:
    data = _event()
    del data[field]
    with pytest.raises(ValidationError) as info:
        TouchpointIn.model_validate(data)
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("field", "limit"),
    [("customer_id", 255), ("event", 200), ("event_id", 128), ("channel", 50)],
)
def test_length_limits(field: str, limit: int) -> None:
    accepted = TouchpointIn.model_validate(_event(**{field: "x" * limit}))
    assert getattr(accepted, field) == "x" * limit
    assert field in _rejected(**{field: "x" * (limit + 1)})


def test_customer_id_256_chars_rejected_255_accepted() -> None:
    assert TouchpointIn.model_validate(_event(customer_id="c" * 255)).customer_id == "c" * 255
    assert "customer_id" in _rejected(customer_id="c" * 256)


def test_event_201_chars_rejected() -> None:
    assert "event" in _rejected(event="e" * 201)


def test_extra_field_rejected() -> None:
    message = _rejected(user_id="u-1")
    assert "user_id" in message
    assert "unknown field" in message


def test_touchpoint_in_is_frozen() -> None:
    incoming = TouchpointIn.model_validate(_event())
    with pytest.raises(ValidationError):
        incoming.event = "other"  # type: ignore[misc]


# --- Touchpoint wire format -----------------------------------------------------------------------


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
    incoming = TouchpointIn.model_validate(_event(occurred_at="2026-01-31T09:00:00-03:00"))
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
