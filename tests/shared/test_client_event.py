"""What TouchpointIn, the client event's model, accepts and refuses, field by field."""

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from stageline_shared.contract.client_event import TouchpointIn
from stageline_shared.wording import describe_validation_error
from tests.fixtures.client_event import event


def _rejected(**fields: Any) -> str:
    with pytest.raises(ValidationError) as info:
        TouchpointIn.model_validate(event(**fields))
    return describe_validation_error(info.value)


@pytest.mark.parametrize("value", ["2026-01-31T12:00:00Z", "2026-01-31T12:00:00.123456+05:30",
                                   "2026-01-31T12:00:00-08:00"])
def test_occurred_at_with_offset_accepted(value: str) -> None:
    assert TouchpointIn.model_validate(event(occurred_at=value)).occurred_at == value


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
    incoming = TouchpointIn.model_validate(event(customer_id="tenant/ü-42 ✓", event="Zahlung läuft"))
    assert incoming.customer_id == "tenant/ü-42 ✓"


def test_control_characters_other_than_nul_allowed_in_properties() -> None:
    incoming = TouchpointIn.model_validate(event(properties={"note": "line 1\nline 2\t\x7f"}))
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
    data = event()
    del data[field]
    with pytest.raises(ValidationError) as info:
        TouchpointIn.model_validate(data)
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("field", "limit"),
    [("customer_id", 255), ("event", 200), ("event_id", 128), ("channel", 50)],
)
def test_length_limits(field: str, limit: int) -> None:
    accepted = TouchpointIn.model_validate(event(**{field: "x" * limit}))
    assert getattr(accepted, field) == "x" * limit
    assert field in _rejected(**{field: "x" * (limit + 1)})


def test_customer_id_256_chars_rejected_255_accepted() -> None:
    assert TouchpointIn.model_validate(event(customer_id="c" * 255)).customer_id == "c" * 255
    assert "customer_id" in _rejected(customer_id="c" * 256)


def test_event_201_chars_rejected() -> None:
    assert "event" in _rejected(event="e" * 201)


def test_extra_field_rejected() -> None:
    message = _rejected(user_id="u-1")
    assert "user_id" in message
    assert "unknown field" in message


def test_touchpoint_in_is_frozen() -> None:
    incoming = TouchpointIn.model_validate(event())
    with pytest.raises(ValidationError):
        incoming.event = "other"  # type: ignore[misc]
