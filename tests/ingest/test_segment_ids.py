"""Segment ids and nested values: what is read, what counts as blank, what is refused (no I/O)."""

import uuid
from typing import Any

import pytest

from stageline_ingest.segment.intake import SegmentType
from stageline_shared.contract.limits import MAX_DEPTH
from tests.fixtures.segment_intake import read, refused


@pytest.mark.parametrize(("value", "expected"), [(42, "42"), (0, "0"), (1.5, "1.5"), ("c/1 ü", "c/1 ü")])
def test_ids_may_be_numbers(value: Any, expected: str) -> None:
    touchpoint = read("alias", userId=value, previousId=value, anonymousId=value)
    assert (touchpoint.customer_id, touchpoint.previous_id, touchpoint.anonymous_id) == \
        (expected, expected, expected)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (True, "must be a string or a number"),
        ([1], "must be a string or a number"),
        ("x" * 256, "at most 255 characters"),
        ("a\x00b", "control character (U+0000)"),
        ("a\nb", "control character (U+000A)"),
        ("a\x7fb", "control character (U+007F)"),
    ],
)
@pytest.mark.parametrize("field", ["userId", "anonymousId", "previousId", "groupId"])
def test_ids_follow_the_customer_id_rules(field: str, value: Any, fragment: str) -> None:
    fields = {"userId": "u", "anonymousId": "a", "previousId": "p", "groupId": "g", field: value}
    rejection = refused("group", **fields)
    assert rejection.message.startswith(f"{field}: "), rejection.message
    assert fragment in rejection.message


@pytest.mark.parametrize("blank", ["", "   ", "\t", None])
def test_a_blank_user_id_falls_back_to_the_anonymous_id(blank: Any) -> None:
    # RudderStack's JS SDK sends userId "" on every anonymous event; Segment's and RudderStack's
    # servers take the anonymousId.
    touchpoint = read("track", userId=blank, anonymousId="a-1", event="E")
    assert (touchpoint.customer_id, touchpoint.user_id, touchpoint.anonymous_id) == ("a-1", None, "a-1")
    touchpoint = read("identify", userId="u-1", anonymousId=blank)
    assert (touchpoint.customer_id, touchpoint.anonymous_id) == ("u-1", None)


@pytest.mark.parametrize("blank", ["", "  "])
@pytest.mark.parametrize(
    ("route", "fields", "fragment"),
    [
        ("track", {"userId": "{b}", "anonymousId": "{b}", "event": "E"}, "userId: required (or anonymousId)"),
        ("alias", {"userId": "u", "previousId": "{b}"}, "previousId: required for alias"),
        ("alias", {"userId": "{b}", "anonymousId": "a", "previousId": "p"}, "userId: required for alias"),
    ],
)
def test_blank_ids_count_as_missing(route: SegmentType, fields: dict[str, str], fragment: str,
                                    blank: str) -> None:
    filled = {name: blank if value == "{b}" else value for name, value in fields.items()}
    assert refused(route, **filled).message == fragment


def test_id_of_255_characters_is_fine() -> None:
    assert read("track", userId="x" * 255, event="E").customer_id == "x" * 255


def test_message_id_is_the_dedup_key_else_a_uuid() -> None:
    assert read("track", userId="u", event="E", messageId="m" * 128).event_id == "m" * 128
    first, second = read("track", userId="u", event="E"), read("track", userId="u", event="E")
    assert uuid.UUID(first.event_id) and first.event_id != second.event_id
    assert "messageId: must be at most 128 characters" in \
        refused("track", userId="u", event="E", messageId="m" * 129).message
    assert "messageId: must be a string or a number" in \
        refused("track", userId="u", event="E", messageId=[7]).message


@pytest.mark.parametrize("blank", ["", " ", None])
def test_a_blank_message_id_is_assigned_like_a_missing_one(blank: Any) -> None:
    touchpoint = read("track", userId="u", event="E", messageId=blank)
    assert uuid.UUID(touchpoint.event_id).version == 7


def test_a_numeric_message_id_becomes_a_string() -> None:
    assert read("track", userId="u", event="E", messageId=1590431830865).event_id == "1590431830865"


@pytest.mark.parametrize("field", ["properties", "traits", "context"])
def test_nul_characters_are_refused_where_postgres_cannot_store_them(field: str) -> None:
    route: SegmentType = "identify" if field == "traits" else "track"
    rejection = refused(route, userId="u", event="E", **{field: {"a": {"b": ["ok", "x\x00"]}}})
    assert rejection.message == f"{field}.a.b[1] contains a NUL character (U+0000)"
    assert "key contains a NUL" in refused("track", userId="u", event="E",
                                           properties={"k\x00": 1}).message
    assert "properties.name" in refused("page", userId="u", name="P\x00").message


@pytest.mark.parametrize("field", ["properties", "traits", "context"])
def test_objects_nested_past_max_depth_are_refused(field: str) -> None:
    route: SegmentType = "identify" if field == "traits" else "track"

    def nested(levels: int) -> dict[str, Any]:  # `levels` deep, the object itself the first
        value: Any = "leaf"
        for _ in range(levels - 1):
            value = [value]
        return {"a": value}

    assert read(route, userId="u", event="E", **{field: nested(MAX_DEPTH)})
    rejection = refused(route, userId="u", event="E", **{field: nested(MAX_DEPTH + 1)})
    assert rejection.message == f"{field} nests objects and arrays more than {MAX_DEPTH} levels deep"
    # Far deeper (what once passed orjson's 255-level limit, a server error) is refused the same way.
    assert "more than" in refused(route, userId="u", event="E", **{field: nested(400)}).message
