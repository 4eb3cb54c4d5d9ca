"""Cursors: opaque ones (base64 of a JSON array: the timeline's (occurred_at, kind, key) of the
last item on a page, the audiences' (entered_at, customer_id)), and positions (the feed's and the
deliveries' integer cursors).

A cursor comes back from clients, so anything may arrive: whatever decodes to something other
than a position this API could have written is 400 `invalid_cursor`, before it reaches a query
(a NUL in the key, a time that overflows once in UTC or a kind beyond Postgres's integers
would fail there with a 500).
"""

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import Query

from stageline_shared.contract.limits import EVENT_ID
from stageline_shared.errors import ApiError

Position = tuple[datetime, int, str]
START: Position = (datetime(1, 1, 1, tzinfo=UTC), -1, "")
MAX_CURSOR = 1024  # characters; ours hold a timestamp and an event id and journey (~300)
MAX_KEY = EVENT_ID.max + 72  # an event id and a journey name (64 characters), with room to spare


MAX_POSITION = 2**63 - 1  # Postgres bigint


def pack(values: list[Any]) -> str:
    """An opaque cursor holding these JSON values."""
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def unpack(cursor: str) -> Any:
    """The JSON an opaque cursor holds; ApiError 400 if it is no base64 of JSON."""
    try:
        return orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, orjson.JSONDecodeError, ValueError):
        raise _invalid() from None


def position(cursor: str, name: str = "cursor") -> int:
    """A position cursor (a non-negative bigint); ApiError 400 for anything else."""
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 19 or int(cursor) > MAX_POSITION:
        raise ApiError(400, "invalid_cursor", f"{name} is not one this API returned")
    return int(cursor)


def encode(position: Position) -> str:
    return pack([position[0].isoformat(), position[1], position[2]])


def _invalid() -> ApiError:
    return ApiError(400, "invalid_cursor", "cursor is not one this API returned")


def decode(cursor: str) -> Position:
    """The position a cursor holds (an empty one: the start); ApiError 400 for anything this API
    did not write."""
    if not cursor:
        return START
    if len(cursor) > MAX_CURSOR:
        raise _invalid()
    try:
        at, kind, key = unpack(cursor)
        if type(at) is not str or type(kind) is not int or type(key) is not str:
            raise _invalid()
        occurred_at = datetime.fromisoformat(at)
        if occurred_at.tzinfo is None:
            raise _invalid()
        occurred_at = occurred_at.astimezone(UTC)
    except (ValueError, TypeError, OverflowError):
        raise _invalid() from None
    if kind not in (0, 1) or len(key) > MAX_KEY or "\x00" in key:
        raise _invalid()
    return occurred_at, kind, key


def after(
    cursor: Annotated[str | None, Query(description="The `next_cursor` of the previous page")] = None,
) -> Position | None:
    """Dependency: the position `?cursor=` continues from, None without one."""
    return None if cursor is None else decode(cursor)
