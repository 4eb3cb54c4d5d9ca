"""When a Segment message happened: timestamp, originalTimestamp, sentAt correction, clamping (no I/O)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stageline_ingest.segment.intake import occurred_at
from tests.fixtures.segment_intake import RECEIVED, iso, read, refused


def test_timestamp_wins_over_original_timestamp() -> None:
    at = RECEIVED - timedelta(hours=3)
    touchpoint = read("track", userId="u", event="E", timestamp=iso(at),
                      originalTimestamp=iso(at - timedelta(days=1)), sentAt=iso(RECEIVED))
    assert touchpoint.occurred_at == at
    assert read("track", userId="u", event="E", timestamp=iso(at)).occurred_at == at


def test_a_timestamp_is_corrected_from_sent_at_as_segment_does() -> None:
    # analytics.js, analytics-node and analytics-python send the device's `timestamp` with
    # `sentAt`; Segment takes it as the originalTimestamp and corrects it: receivedAt - (sentAt -
    # timestamp). A browser clock 2 h fast still places the event 10 s before the request.
    device_sent = RECEIVED + timedelta(hours=2, seconds=10)
    touchpoint = read("track", userId="u", event="E", sentAt=iso(device_sent),
                      timestamp=iso(RECEIVED + timedelta(hours=2)))
    assert touchpoint.occurred_at == RECEIVED - timedelta(seconds=10)
    # Segment's own example: sent 17 ms after the device's time, received at .266 → .249.
    moment, _ = occurred_at(datetime(2015, 12, 12, 19, 11, 1, 152000, UTC), None,
                            datetime(2015, 12, 12, 19, 11, 1, 169000, UTC),
                            datetime(2015, 12, 12, 19, 11, 1, 266000, UTC))
    assert moment == datetime(2015, 12, 12, 19, 11, 1, 249000, UTC)


def test_clock_skew_is_corrected_from_sent_at() -> None:
    # The device's clock is 2 h fast: it says it sent at 14:00:10 what happened at 14:00:00.
    device_sent = RECEIVED + timedelta(hours=2, seconds=10)
    touchpoint = read("track", userId="u", event="E", sentAt=iso(device_sent),
                      originalTimestamp=iso(RECEIVED + timedelta(hours=2)))
    assert touchpoint.occurred_at == RECEIVED - timedelta(seconds=10)
    assert not touchpoint.clamped


def test_offsets_are_honoured_and_normalised_to_utc() -> None:
    touchpoint = read("track", userId="u", event="E", originalTimestamp="2026-11-23T13:00:00+01:00")
    assert touchpoint.occurred_at == RECEIVED
    assert touchpoint.occurred_at.tzinfo == UTC


def test_original_timestamp_alone_and_nothing_at_all() -> None:
    at = RECEIVED - timedelta(minutes=5)
    assert read("track", userId="u", event="E", originalTimestamp=iso(at)).occurred_at == at
    assert read("track", userId="u", event="E", sentAt=iso(at)).occurred_at == RECEIVED


@pytest.mark.parametrize(
    ("ahead", "clamped"),
    [(timedelta(hours=24), False), (timedelta(hours=24, seconds=1), True), (timedelta(days=400), True)],
)
def test_more_than_24h_ahead_is_clamped(ahead: timedelta, clamped: bool) -> None:
    touchpoint = read("track", userId="u", event="E", timestamp=iso(RECEIVED + ahead))
    assert touchpoint.clamped is clamped
    assert touchpoint.occurred_at == (RECEIVED if clamped else RECEIVED + ahead)


def test_corrected_time_is_clamped_too() -> None:
    # originalTimestamp after sentAt by two days: corrected, it still lies two days ahead.
    moment, clamped = occurred_at(None, RECEIVED + timedelta(days=2), RECEIVED, RECEIVED)
    assert (moment, clamped) == (RECEIVED, True)


def test_timestamps_out_of_range_are_refused_not_crashed() -> None:
    rejection = refused("track", userId="u", event="E", originalTimestamp="0001-01-01T00:00:00Z",
                        sentAt="9999-12-31T23:59:59Z")
    assert rejection.message.startswith("originalTimestamp: out of range")
    rejection = refused("track", userId="u", event="E", timestamp="0001-01-01T00:00:00Z",
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
    touchpoint = read("track", userId="u", event="E", **{field: value})
    assert (touchpoint.occurred_at, touchpoint.clamped) == (RECEIVED, False)


def test_an_unreadable_timestamp_leaves_the_original_timestamp() -> None:
    at = RECEIVED - timedelta(minutes=5)
    touchpoint = read("track", userId="u", event="E", timestamp="soon", originalTimestamp=iso(at))
    assert touchpoint.occurred_at == at


def test_a_time_without_an_offset_is_utc() -> None:
    touchpoint = read("track", userId="u", event="E", timestamp="2026-11-23T11:00:00")
    assert touchpoint.occurred_at == RECEIVED - timedelta(hours=1)
