"""Timeline cursors: ours decode to the position they hold; anything else is a 400, never a
position a query would fail on."""

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageline_api import cursor
from stageline_shared.errors import ApiError


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_cursor_decodes_to_its_position() -> None:
    at = datetime(2026, 11, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert cursor.decode(cursor.encode((at, 1, "e-1 shop"))) == (at.astimezone(UTC), 1, "e-1 shop")
    assert cursor.decode("") == cursor.START


@pytest.mark.parametrize("value", [
    ["0001-01-01T00:00:00+14:00", 0, ""],  # before year 1 in UTC
    ["9999-12-31T23:59:59-14:00", 0, ""],  # after 9999 in UTC
    ["2026-11-01T12:00:00", 0, "x"],  # no offset
    ["2026-11-01T12:00:00Z", 10**30, "x"],
    ["2026-11-01T12:00:00Z", 2, "x"],
    ["2026-11-01T12:00:00Z", True, "x"],
    ["2026-11-01T12:00:00Z", 0.0, "x"],
    ["2026-11-01T12:00:00Z", 0, "\x00"],
    ["2026-11-01T12:00:00Z", 0, "x" * 201],
    ["2026-11-01T12:00:00Z", 0, 5],
    [1, 0, "x"],
    {"at": "2026-11-01T12:00:00Z"},
])
def test_positions_this_api_never_writes_are_refused(value: object) -> None:
    with pytest.raises(ApiError) as refused:
        cursor.decode(_b64(json.dumps(value).encode()))
    assert (refused.value.status, refused.value.code) == (400, "invalid_cursor")


@given(st.one_of(st.text(), st.binary().map(_b64),
                 st.lists(st.one_of(st.text(), st.integers(), st.floats(), st.none()), max_size=4)
                 .map(lambda value: _b64(json.dumps(value).encode()))))
def test_anything_else_is_a_position_or_a_400(value: str) -> None:
    try:
        at, kind, key = cursor.decode(value)
    except ApiError as exc:
        assert exc.status == 400
        return
    assert at.tzinfo is UTC and kind in (0, 1, -1) and "\x00" not in key
