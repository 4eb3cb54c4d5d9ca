"""Segment batches and documents: per-item results, batch context and sentAt, envelopes, limits (no I/O)."""

from datetime import timedelta
from typing import Any

import orjson
import pytest

from stageline_ingest.segment.intake import (
    MAX_BATCH_MESSAGES,
    MAX_MESSAGE_BYTES,
    Rejection,
    merge_context,
    parse_document,
    read_batch,
    read_message,
    write_key_of,
)
from stageline_shared.errors import ApiError
from tests.fixtures.segment_intake import RECEIVED, iso, read


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
    assert read("track", userId="u", event="E", type="TRACK").type == "track"


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
        {"type": "track", "userId": "u", "event": "A", "originalTimestamp": iso(at)}]}
    [touchpoint] = read_batch(document, RECEIVED).accepted
    assert touchpoint.occurred_at == at


def test_batch_sent_at_applies_to_items_without_their_own() -> None:
    device = RECEIVED + timedelta(hours=1)  # a clock an hour fast
    document = {"sentAt": iso(device), "batch": [
        {"type": "track", "userId": "u", "event": "A", "originalTimestamp": iso(device - timedelta(minutes=1))},
        {"type": "track", "userId": "u", "event": "B", "originalTimestamp": iso(device - timedelta(minutes=1)),
         "sentAt": iso(device - timedelta(minutes=1))},
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


# --- documents and keys ----------------------------------------------------------------------------


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
