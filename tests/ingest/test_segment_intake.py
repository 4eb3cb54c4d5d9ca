"""Segment messages → touchpoints: mapping per type, batch context, clock skew, ids, limits (no I/O)."""

import gzip
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from stageline_ingest.body import decode_body, gunzip
from stageline_ingest.segment.intake import (
    MAX_BATCH_MESSAGES,
    MAX_MESSAGE_BYTES,
    MAX_REQUEST_BYTES,
    Rejection,
    SegmentType,
    merge_context,
    occurred_at,
    parse_document,
    read_batch,
    read_message,
    write_key_of,
)
from stageline_shared.contract.limits import MAX_DEPTH
from stageline_shared.contract.record import Touchpoint, links
from stageline_shared.errors import ApiError
from stageline_shared.journeys import load_journeys
from stageline_shared.settings import DEFAULT_JOURNEYS_FILE
from stageline_stager.engine import matches

RECEIVED = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def _read(route: SegmentType, **fields: Any) -> Touchpoint:
    return read_message(fields, route, RECEIVED, "site")


def _refused(route: SegmentType, **fields: Any) -> Rejection:
    with pytest.raises(Rejection) as info:
        read_message(fields, route, RECEIVED)
    return info.value


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- one touchpoint per call ----------------------------------------------------------------------


def test_track_maps_event_properties_and_ids() -> None:
    touchpoint = _read("track", userId="u-1", anonymousId="a-1", event="Order Completed",
                       properties={"total": 42.5}, messageId="m-1", context={"ip": "1.2.3.4"})

    assert touchpoint.type == "track"
    assert touchpoint.event_id == "m-1"
    assert touchpoint.customer_id == "u-1"
    assert (touchpoint.user_id, touchpoint.anonymous_id) == ("u-1", "a-1")
    assert touchpoint.event == "Order Completed"
    assert touchpoint.properties == {"total": 42.5}
    assert touchpoint.context == {"ip": "1.2.3.4"}
    assert touchpoint.channel is None
    assert touchpoint.source == "site"
    assert touchpoint.occurred_at == RECEIVED == touchpoint.received_at
    assert not touchpoint.clamped


def test_customer_is_the_anonymous_id_without_a_user_id() -> None:
    touchpoint = _read("track", anonymousId="a-1", event="Ad Clicked")
    assert touchpoint.customer_id == "a-1"
    assert touchpoint.user_id is None


def test_page_is_page_viewed_with_name_and_category() -> None:
    touchpoint = _read("page", anonymousId="a-1", name="Pricing", category="Docs",
                       properties={"url": "https://shop.example/pricing", "name": "old"})

    assert touchpoint.type == "page"
    assert touchpoint.event == "Page Viewed"
    assert touchpoint.properties == {"url": "https://shop.example/pricing", "name": "Pricing",
                                     "category": "Docs"}
    assert touchpoint.channel == "web"


def test_page_without_name_keeps_properties_only() -> None:
    touchpoint = _read("page", anonymousId="a-1", name=None, properties={"path": "/"})
    assert touchpoint.properties == {"path": "/"}


def test_screen_is_screen_viewed_on_mobile() -> None:
    touchpoint = _read("screen", userId="u-1", name="Cart")
    assert (touchpoint.event, touchpoint.channel, touchpoint.properties) == \
        ("Screen Viewed", "mobile", {"name": "Cart"})


def test_channel_comes_from_context_when_a_string() -> None:
    assert _read("page", userId="u", context={"channel": "email"}).channel == "email"
    assert _read("page", userId="u", context={"channel": {"x": 1}}).channel == "web"
    assert _read("track", userId="u", event="E", context={"channel": 5}).channel is None
    assert "context.channel" in _refused("track", userId="u", event="E",
                                         context={"channel": "a\nb"}).message
    assert "context.channel" in _refused("track", userId="u", event="E",
                                         context={"channel": "x" * 51}).message


def test_identify_merges_context_traits_under_top_level_traits() -> None:
    touchpoint = _read("identify", userId="u-1", traits={"plan": "pro", "name": "Ada"},
                       context={"traits": {"plan": "free", "email": "ada@example.com"}})

    assert touchpoint.event == "Identified"
    assert touchpoint.properties == {"plan": "pro", "name": "Ada", "email": "ada@example.com"}


def test_identify_with_traits_only_in_context() -> None:
    # rudder-sdk-python puts identify traits in context.traits.
    touchpoint = _read("identify", anonymousId="a-1", context={"traits": {"email": "x@example.com"}})
    assert touchpoint.properties == {"email": "x@example.com"}
    assert "context.traits" in _refused("identify", userId="u", context={"traits": [1]}).message


def test_group_joined_with_group_traits() -> None:
    touchpoint = _read("group", userId="u-1", groupId=77, traits={"employees": 40},
                       context={"traits": {"email": "user@example.com"}})

    assert touchpoint.event == "Group Joined"
    assert touchpoint.group_id == "77"
    assert touchpoint.properties == {"employees": 40}


def test_group_without_a_group_id_updates_the_current_groups_traits() -> None:
    # rudderanalytics.group(traits) sends no groupId (RudderStack's sanity suite, group7).
    touchpoint = _read("group", anonymousId="a-1", userId="", traits={"groupName": "Anime fan club"})
    assert (touchpoint.event, touchpoint.group_id) == ("Group Joined", None)
    assert touchpoint.properties == {"groupName": "Anime fan club"}


def test_alias_sets_previous_id() -> None:
    touchpoint = _read("alias", userId="u-1", previousId="a-1")

    assert touchpoint.event == "Alias"
    assert (touchpoint.customer_id, touchpoint.previous_id) == ("u-1", "a-1")
    assert links(touchpoint) == [("a-1", "u-1")]


def test_previous_and_group_ids_belong_to_their_calls() -> None:
    touchpoint = _read("track", userId="u", event="E", previousId="p", groupId="g")
    assert (touchpoint.previous_id, touchpoint.group_id) == (None, None)


@pytest.mark.parametrize(
    ("route", "fields", "fragment"),
    [
        ("track", {"event": "E"}, "userId: required (or anonymousId)"),
        ("track", {"userId": "u"}, "event: required for track"),
        ("track", {"userId": "u", "event": ""}, "event: must not be empty"),
        ("track", {"userId": "u", "event": "x" * 201}, "event: must be at most 200 characters"),
        ("track", {"userId": "u", "event": "a\tb"}, "event: contains a control character (U+0009)"),
        ("page", {"name": "Home"}, "userId: required (or anonymousId)"),
        ("alias", {"userId": "u"}, "previousId: required for alias"),
        ("alias", {"anonymousId": "a", "previousId": "p"}, "userId: required for alias"),
        ("page", {"userId": "u", "name": 5}, "name: must be a string"),
        ("track", {"userId": "u", "event": "E", "properties": [1]}, "properties: must be a JSON object"),
        ("identify", {"userId": "u", "traits": "x"}, "traits: must be a JSON object"),
        ("track", {"userId": "u", "event": "E", "type": "page"}, "type: 'page' does not match the route /v1/track"),
    ],
)
def test_missing_or_wrong_fields_are_named(route: SegmentType, fields: dict[str, Any], fragment: str) -> None:
    rejection = _refused(route, **fields)
    assert fragment in rejection.message
    assert (rejection.status, rejection.code, rejection.reason) == (400, "invalid_event", "invalid")


def test_extra_fields_from_sdks_are_tolerated() -> None:
    touchpoint = _read("track", userId="u", event="E", type="track", writeKey="k", version=2,
                       _metadata={"nodeVersion": "20"}, library={"name": "x"}, channel="server",
                       integrations={"All": True})
    assert touchpoint.event == "E"
    # Stageline stores every event whatever `integrations` routes to, so its shape is not checked.
    assert _read("track", userId="u", event="E", integrations=["Amplitude"]).event == "E"


# --- ids ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [(42, "42"), (0, "0"), (1.5, "1.5"), ("c/1 ü", "c/1 ü")])
def test_ids_may_be_numbers(value: Any, expected: str) -> None:
    touchpoint = _read("alias", userId=value, previousId=value, anonymousId=value)
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
    rejection = _refused("group", **fields)
    assert rejection.message.startswith(f"{field}: "), rejection.message
    assert fragment in rejection.message


@pytest.mark.parametrize("blank", ["", "   ", "\t", None])
def test_a_blank_user_id_falls_back_to_the_anonymous_id(blank: Any) -> None:
    # RudderStack's JS SDK sends userId "" on every anonymous event; Segment's and RudderStack's
    # servers take the anonymousId.
    touchpoint = _read("track", userId=blank, anonymousId="a-1", event="E")
    assert (touchpoint.customer_id, touchpoint.user_id, touchpoint.anonymous_id) == ("a-1", None, "a-1")
    touchpoint = _read("identify", userId="u-1", anonymousId=blank)
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
    assert _refused(route, **filled).message == fragment


def test_id_of_255_characters_is_fine() -> None:
    assert _read("track", userId="x" * 255, event="E").customer_id == "x" * 255


def test_message_id_is_the_dedup_key_else_a_uuid() -> None:
    assert _read("track", userId="u", event="E", messageId="m" * 128).event_id == "m" * 128
    first, second = _read("track", userId="u", event="E"), _read("track", userId="u", event="E")
    assert uuid.UUID(first.event_id) and first.event_id != second.event_id
    assert "messageId: must be at most 128 characters" in \
        _refused("track", userId="u", event="E", messageId="m" * 129).message
    assert "messageId: must be a string or a number" in \
        _refused("track", userId="u", event="E", messageId=[7]).message


@pytest.mark.parametrize("blank", ["", " ", None])
def test_a_blank_message_id_is_assigned_like_a_missing_one(blank: Any) -> None:
    touchpoint = _read("track", userId="u", event="E", messageId=blank)
    assert uuid.UUID(touchpoint.event_id).version == 7


def test_a_numeric_message_id_becomes_a_string() -> None:
    assert _read("track", userId="u", event="E", messageId=1590431830865).event_id == "1590431830865"


@pytest.mark.parametrize("field", ["properties", "traits", "context"])
def test_nul_characters_are_refused_where_postgres_cannot_store_them(field: str) -> None:
    route: SegmentType = "identify" if field == "traits" else "track"
    rejection = _refused(route, userId="u", event="E", **{field: {"a": {"b": ["ok", "x\x00"]}}})
    assert rejection.message == f"{field}.a.b[1] contains a NUL character (U+0000)"
    assert "key contains a NUL" in _refused("track", userId="u", event="E",
                                           properties={"k\x00": 1}).message
    assert "properties.name" in _refused("page", userId="u", name="P\x00").message


@pytest.mark.parametrize("field", ["properties", "traits", "context"])
def test_objects_nested_past_max_depth_are_refused(field: str) -> None:
    route: SegmentType = "identify" if field == "traits" else "track"

    def nested(levels: int) -> dict[str, Any]:  # `levels` deep, the object itself the first
        value: Any = "leaf"
        for _ in range(levels - 1):
            value = [value]
        return {"a": value}

    assert _read(route, userId="u", event="E", **{field: nested(MAX_DEPTH)})
    rejection = _refused(route, userId="u", event="E", **{field: nested(MAX_DEPTH + 1)})
    assert rejection.message == f"{field} nests objects and arrays more than {MAX_DEPTH} levels deep"
    # Far deeper (what once passed orjson's 255-level limit, a server error) is refused the same way.
    assert "more than" in _refused(route, userId="u", event="E", **{field: nested(400)}).message


# --- time ------------------------------------------------------------------------------------------


def test_timestamp_wins_over_original_timestamp() -> None:
    at = RECEIVED - timedelta(hours=3)
    touchpoint = _read("track", userId="u", event="E", timestamp=_iso(at),
                       originalTimestamp=_iso(at - timedelta(days=1)), sentAt=_iso(RECEIVED))
    assert touchpoint.occurred_at == at
    assert _read("track", userId="u", event="E", timestamp=_iso(at)).occurred_at == at


def test_a_timestamp_is_corrected_from_sent_at_as_segment_does() -> None:
    # analytics.js, analytics-node and analytics-python send the device's `timestamp` with
    # `sentAt`; Segment takes it as the originalTimestamp and corrects it: receivedAt - (sentAt -
    # timestamp). A browser clock 2 h fast still places the event 10 s before the request.
    device_sent = RECEIVED + timedelta(hours=2, seconds=10)
    touchpoint = _read("track", userId="u", event="E", sentAt=_iso(device_sent),
                       timestamp=_iso(RECEIVED + timedelta(hours=2)))
    assert touchpoint.occurred_at == RECEIVED - timedelta(seconds=10)
    # Segment's own example: sent 17 ms after the device's time, received at .266 → .249.
    moment, _ = occurred_at(datetime(2015, 12, 12, 19, 11, 1, 152000, UTC), None,
                            datetime(2015, 12, 12, 19, 11, 1, 169000, UTC),
                            datetime(2015, 12, 12, 19, 11, 1, 266000, UTC))
    assert moment == datetime(2015, 12, 12, 19, 11, 1, 249000, UTC)


def test_clock_skew_is_corrected_from_sent_at() -> None:
    # The device's clock is 2 h fast: it says it sent at 14:00:10 what happened at 14:00:00.
    device_sent = RECEIVED + timedelta(hours=2, seconds=10)
    touchpoint = _read("track", userId="u", event="E", sentAt=_iso(device_sent),
                       originalTimestamp=_iso(RECEIVED + timedelta(hours=2)))
    assert touchpoint.occurred_at == RECEIVED - timedelta(seconds=10)
    assert not touchpoint.clamped


def test_offsets_are_honoured_and_normalised_to_utc() -> None:
    touchpoint = _read("track", userId="u", event="E", originalTimestamp="2026-11-23T13:00:00+01:00")
    assert touchpoint.occurred_at == RECEIVED
    assert touchpoint.occurred_at.tzinfo == UTC


def test_original_timestamp_alone_and_nothing_at_all() -> None:
    at = RECEIVED - timedelta(minutes=5)
    assert _read("track", userId="u", event="E", originalTimestamp=_iso(at)).occurred_at == at
    assert _read("track", userId="u", event="E", sentAt=_iso(at)).occurred_at == RECEIVED


@pytest.mark.parametrize(
    ("ahead", "clamped"),
    [(timedelta(hours=24), False), (timedelta(hours=24, seconds=1), True), (timedelta(days=400), True)],
)
def test_more_than_24h_ahead_is_clamped(ahead: timedelta, clamped: bool) -> None:
    touchpoint = _read("track", userId="u", event="E", timestamp=_iso(RECEIVED + ahead))
    assert touchpoint.clamped is clamped
    assert touchpoint.occurred_at == (RECEIVED if clamped else RECEIVED + ahead)


def test_corrected_time_is_clamped_too() -> None:
    # originalTimestamp after sentAt by two days: corrected, it still lies two days ahead.
    moment, clamped = occurred_at(None, RECEIVED + timedelta(days=2), RECEIVED, RECEIVED)
    assert (moment, clamped) == (RECEIVED, True)


def test_timestamps_out_of_range_are_refused_not_crashed() -> None:
    rejection = _refused("track", userId="u", event="E", originalTimestamp="0001-01-01T00:00:00Z",
                         sentAt="9999-12-31T23:59:59Z")
    assert rejection.message.startswith("originalTimestamp: out of range")
    rejection = _refused("track", userId="u", event="E", timestamp="0001-01-01T00:00:00Z",
                         sentAt="9999-12-31T23:59:59Z")
    assert rejection.message.startswith("timestamp: out of range")


@pytest.mark.parametrize(
    "value",
    ["yesterday", 1700000000, "2026-01-01T00:00:00Z" + " " * 60, "0001-01-01T00:00:00+01:00",
     "2015-09-15T10:06:21 am+0400", {"at": "2026-01-01T00:00:00Z"}],
)
@pytest.mark.parametrize("field", ["timestamp", "originalTimestamp", "sentAt"])
def test_a_time_that_cannot_be_read_counts_as_absent(field: str, value: Any) -> None:
    # As Segment's and RudderStack's servers do: the message is kept, its time is not.
    touchpoint = _read("track", userId="u", event="E", **{field: value})
    assert (touchpoint.occurred_at, touchpoint.clamped) == (RECEIVED, False)


def test_an_unreadable_timestamp_leaves_the_original_timestamp() -> None:
    at = RECEIVED - timedelta(minutes=5)
    touchpoint = _read("track", userId="u", event="E", timestamp="soon", originalTimestamp=_iso(at))
    assert touchpoint.occurred_at == at


def test_a_time_without_an_offset_is_utc() -> None:
    touchpoint = _read("track", userId="u", event="E", timestamp="2026-11-23T11:00:00")
    assert touchpoint.occurred_at == RECEIVED - timedelta(hours=1)


# --- batches ---------------------------------------------------------------------------------------


def test_batch_maps_each_type_and_reports_bad_items_by_index() -> None:
    document = {"batch": [
        {"type": "track", "userId": "u", "event": "E"},
        {"type": "page", "anonymousId": "a", "name": "Pricing"},
        {"type": "track", "event": "no id"},
        {"type": "delete", "userId": "u"},
        "not an object",
        {"type": "alias", "userId": "u", "previousId": "a"},
    ]}
    intake = read_batch(document, RECEIVED, "site")

    assert [t.event for t in intake.accepted] == ["E", "Page Viewed", "Alias"]
    assert all(t.source == "site" for t in intake.accepted)
    assert intake.rejected == [
        {"index": 2, "code": "invalid_event", "error": "userId: required (or anonymousId)"},
        {"index": 3, "code": "invalid_event",
         "error": "type: must be one of track, identify, page, screen, group, alias"},
        {"index": 4, "code": "invalid_event", "error": "message must be a JSON object, got str"},
    ]
    assert intake.reasons == ["invalid", "invalid", "invalid"]


def test_types_are_read_in_any_case() -> None:
    document = {"batch": [{"type": "Track", "userId": "u", "event": "E"}, {"type": " PAGE ", "userId": "u"}]}
    assert [t.type for t in read_batch(document, RECEIVED).accepted] == ["track", "page"]
    assert _read("track", userId="u", event="E", type="TRACK").type == "track"


def test_batch_context_merges_under_each_items_context() -> None:
    document = {
        "context": {"library": {"name": "sdk", "version": "1"}, "ip": "1.1.1.1", "channel": "email"},
        "batch": [
            {"type": "track", "userId": "u", "event": "A",
             "context": {"library": {"version": "2"}, "ip": "2.2.2.2"}},
            {"type": "track", "userId": "u", "event": "B", "context": None},
            {"type": "track", "userId": "u", "event": "C"},
        ],
    }
    first, second, third = read_batch(document, RECEIVED).accepted

    assert first.context == {"library": {"name": "sdk", "version": "2"}, "ip": "2.2.2.2", "channel": "email"}
    assert second.context == third.context == document["context"]
    assert first.channel == "email"


def test_merge_context_item_wins_and_replaces_non_objects() -> None:
    assert merge_context({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": 9}, "d": {"x": 1}}) == \
        {"a": {"b": 9, "c": 2}, "d": {"x": 1}}
    assert merge_context({"a": {"b": 1}}, {"a": "flat"}) == {"a": "flat"}


def test_an_unreadable_batch_sent_at_corrects_nothing() -> None:
    at = RECEIVED - timedelta(minutes=5)
    document = {"sentAt": "2021-10-16T16:00:27.957:Z:", "batch": [
        {"type": "track", "userId": "u", "event": "A", "originalTimestamp": _iso(at)}]}
    [touchpoint] = read_batch(document, RECEIVED).accepted
    assert touchpoint.occurred_at == at


def test_batch_sent_at_applies_to_items_without_their_own() -> None:
    device = RECEIVED + timedelta(hours=1)  # a clock an hour fast
    document = {"sentAt": _iso(device), "batch": [
        {"type": "track", "userId": "u", "event": "A", "originalTimestamp": _iso(device - timedelta(minutes=1))},
        {"type": "track", "userId": "u", "event": "B", "originalTimestamp": _iso(device - timedelta(minutes=1)),
         "sentAt": _iso(device - timedelta(minutes=1))},
    ]}
    first, second = read_batch(document, RECEIVED).accepted
    assert first.occurred_at == RECEIVED - timedelta(minutes=1)
    assert second.occurred_at == RECEIVED


@pytest.mark.parametrize(
    ("document", "status", "code", "fragment"),
    [
        ({}, 400, "invalid_body", "batch: required"),
        ({"batch": {"type": "track"}}, 400, "invalid_body", "batch: required, a JSON array"),
        ({"batch": []}, 400, "no_valid_events", "batch is empty"),
        ({"batch": [{}], "context": [1]}, 400, "invalid_body", "context: must be a JSON object"),
        ({"batch": [{}] * (MAX_BATCH_MESSAGES + 1)}, 413, "too_many_events", "limit is 2500"),
    ],
)
def test_bad_batch_envelopes(document: dict[str, Any], status: int, code: str, fragment: str) -> None:
    with pytest.raises(ApiError) as info:
        read_batch(document, RECEIVED)
    assert (info.value.status, info.value.code) == (status, code)
    assert fragment in info.value.message


def test_a_batch_of_2500_is_accepted() -> None:
    document = {"batch": [{"type": "track", "userId": f"u-{i}", "event": "E"} for i in range(MAX_BATCH_MESSAGES)]}
    assert len(read_batch(document, RECEIVED).accepted) == MAX_BATCH_MESSAGES


# --- size limits -----------------------------------------------------------------------------------


def _padded(size: int) -> dict[str, Any]:
    """A track message of exactly `size` bytes as JSON."""
    message: dict[str, Any] = {"type": "track", "userId": "u", "event": "E", "properties": {"p": ""}}
    message["properties"]["p"] = "x" * (size - len(orjson.dumps(message)))
    assert len(orjson.dumps(message)) == size
    return message


def test_message_limit_is_32_kib() -> None:
    assert MAX_MESSAGE_BYTES == 32 * 1024
    assert read_message(_padded(MAX_MESSAGE_BYTES), "track", RECEIVED).event == "E"
    with pytest.raises(Rejection) as info:
        read_message(_padded(MAX_MESSAGE_BYTES + 1), "track", RECEIVED)
    assert (info.value.status, info.value.code, info.value.reason) == (413, "event_too_large", "too_large")
    assert "limit is 32768" in info.value.message


def test_oversized_item_in_a_batch_is_rejected_alone() -> None:
    document = {"batch": [_padded(MAX_MESSAGE_BYTES + 1), {"type": "track", "userId": "u", "event": "ok"}]}
    intake = read_batch(document, RECEIVED)
    assert [t.event for t in intake.accepted] == ["ok"]
    assert intake.rejected[0]["index"] == 0 and intake.rejected[0]["code"] == "event_too_large"
    assert intake.reasons == ["too_large"]


def test_message_limit_counts_the_merged_batch_context() -> None:
    item = _padded(MAX_MESSAGE_BYTES - 100)
    intake = read_batch({"context": {"pad": "y" * 200}, "batch": [item]}, RECEIVED)
    assert intake.rejected[0]["code"] == "event_too_large"


# --- documents, keys, bodies -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"", "malformed_json"), (b"{", "malformed_json"), (b"[1]", "invalid_body"), (b'"s"', "invalid_body")],
)
def test_parse_document_refuses_non_objects(body: bytes, code: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_document(body)
    assert (info.value.status, info.value.code) == (400, code)


def test_write_key_from_body() -> None:
    assert write_key_of({"writeKey": "k"}) == "k"
    assert write_key_of({"writeKey": ""}) is None
    assert write_key_of({"writeKey": 5}) is None
    assert write_key_of({}) is None


def test_gunzip_round_trip_and_concatenated_members() -> None:
    assert gunzip(gzip.compress(b'{"a": 1}'), 100) == b'{"a": 1}'
    assert gunzip(gzip.compress(b"ab") + gzip.compress(b"cd"), 100) == b"abcd"
    assert gunzip(gzip.compress(b"ab") + b"\x00" * 8, 100) == b"ab"
    assert decode_body(b"plain", None, 10) == b"plain"
    assert decode_body(gzip.compress(b"z"), "GZIP", 10) == b"z"


def test_gzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))  # ~50 KB that inflates to 50 MB
    assert len(bomb) < MAX_REQUEST_BYTES
    with pytest.raises(ApiError) as info:
        gunzip(bomb, MAX_REQUEST_BYTES)
    assert (info.value.status, info.value.code) == (413, "body_too_large")
    with pytest.raises(ApiError):
        gunzip(gzip.compress(b"x" * 60) * 2, 100)  # over the limit only across members


def test_exactly_the_limit_decompresses() -> None:
    assert len(gunzip(gzip.compress(b"x" * 1000), 1000)) == 1000


# mtime=0: the header holds no clock, so every xdist worker collects the same test ids.
@pytest.mark.parametrize(
    "data",
    [b"", b"not gzip at all", gzip.compress(b"x" * 100, mtime=0)[:-6], zlib.compress(b"deflate, not gzip"),
     gzip.compress(b"ok", mtime=0) + b"trailing garbage"],
)
def test_malformed_gzip_is_a_400(data: bytes) -> None:
    with pytest.raises(ApiError) as info:
        gunzip(data, 1000)
    assert (info.value.status, info.value.code) == (400, "malformed_gzip")


def test_unknown_content_encoding_is_refused() -> None:
    with pytest.raises(ApiError) as info:
        decode_body(b"x", "br", 10)
    assert (info.value.status, info.value.code) == (415, "unsupported_encoding")


# --- the default journeys see page views --------------------------------------------------------------


def test_a_pricing_page_view_is_consideration_in_the_default_journey() -> None:
    journey = load_journeys(DEFAULT_JOURNEYS_FILE)["ecommerce"]
    pricing = _read("page", anonymousId="a", name="Pricing")
    home = _read("page", anonymousId="a", name="Home")

    matched = [rule.stage for rule in journey.rules if matches(rule.match, pricing)]
    assert matched == ["consideration"]
    assert not [rule for rule in journey.rules if matches(rule.match, home)]
