"""Segment times read as Segment's and RudderStack's servers read them (no I/O)."""

from datetime import UTC, datetime
from typing import Any

import pytest

from stageline_ingest.segment.timestamps import MAX_TIME_LENGTH, read_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-01-13T08:13:58.548Z", datetime(2023, 1, 13, 8, 13, 58, 548000, UTC)),
        ("2023-01-13T09:13:58.548+01:00", datetime(2023, 1, 13, 8, 13, 58, 548000, UTC)),
        ("2015-10-25T01:00:30+0800", datetime(2015, 10, 24, 17, 0, 30, tzinfo=UTC)),
        # Go's RFC 3339 with nanoseconds: microseconds kept, the rest dropped.
        ("2009-11-10T23:00:00.123456789Z", datetime(2009, 11, 10, 23, 0, 0, 123456, UTC)),
        # No offset: UTC, as Segment's spec has every time.
        ("2026-01-01T10:00:00", datetime(2026, 1, 1, 10, tzinfo=UTC)),
        ("2026-01-01 10:00:00", datetime(2026, 1, 1, 10, tzinfo=UTC)),
        # Segment's own batch example.
        ("2015-2-02T00:30:12.984Z", datetime(2015, 2, 2, 0, 30, 12, 984000, UTC)),
        # analytics-swift 1.0 (segmentio/analytics-swift#75).
        ("2021-10-16T16:00:27.029:Z", datetime(2021, 10, 16, 16, 0, 27, 29000, UTC)),
        ("2021-10-16T18:00:27.029:+02:00", datetime(2021, 10, 16, 16, 0, 27, 29000, UTC)),
        ("2021-1-6T6:05-0130", datetime(2021, 1, 6, 7, 35, tzinfo=UTC)),
    ],
)
def test_times_sdks_write_are_read(text: str, expected: datetime) -> None:
    moment = read_time(text)
    assert moment == expected
    assert moment is not None and moment.tzinfo == UTC


@pytest.mark.parametrize(
    "value",
    [None, "", "yesterday", "2015-13-02T00:30:12Z", "2015-2-30T00:30:12Z", "2021-10-16T16:00:27+24:00",
     "2015-09-15T10:06:21 am+0400", "0001-01-01T00:00:00+01:00", "2026-01-01T00:00:00Z" + " " * 60,
     1700000000, 1.5, True, ["2026-01-01T00:00:00Z"]],
)
def test_what_is_not_a_time_is_none(value: Any) -> None:
    assert read_time(value) is None


def test_the_length_limit() -> None:
    text = "2026-01-01T00:00:00.1" + "0" * (MAX_TIME_LENGTH - 22) + "Z"
    assert len(text) == MAX_TIME_LENGTH
    assert read_time(text) == datetime(2026, 1, 1, 0, 0, 0, 100000, UTC)
    assert read_time(text[:-1] + "0Z") is None

