"""Opaque timeline cursors: the (occurred_at, kind, key) of the last item on a page.

A cursor comes back from clients, so anything may arrive: whatever decodes to something other
than a position this API could have written is 400 `invalid_cursor`, before it reaches a query
(a NUL in the key, a time that overflows once in UTC or a kind beyond Postgres's integers
would fail there with a 500).
"""

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import Query

from stageline_shared.contract.limits import EVENT_ID
from stageline_shared.errors import ApiError

Position = tuple[datetime, int, str]
START: Position = (datetime(1, 1, 1, tzinfo=UTC), -1, "")
MAX_CURSOR = 1024  # characters; ours hold a timestamp and an event id and journey (~300)
MAX_KEY = EVENT_ID.max + 72  # an event id and a journey name (64 characters), with room to spare


def encode(position: Position) -> str:
    raw = orjson.dumps([position[0].isoformat(), position[1], position[2]])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


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
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, kind, key = orjson.loads(raw)
        if type(at) is not str or type(kind) is not int or type(key) is not str:
            raise _invalid()
        occurred_at = datetime.fromisoformat(at)
        if occurred_at.tzinfo is None:
            raise _invalid()
        occurred_at = occurred_at.astimezone(UTC)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError, OverflowError):
        raise _invalid() from None
    if kind not in (0, 1) or len(key) > MAX_KEY or "\x00" in key:
        raise _invalid()
    return occurred_at, kind, key


def after(
    cursor: Annotated[str | None, Query(description="The `next_cursor` of the previous page")] = None,
) -> Position | None:
    """Dependency: the position `?cursor=` continues from, None without one."""
    return None if cursor is None else decode(cursor)
