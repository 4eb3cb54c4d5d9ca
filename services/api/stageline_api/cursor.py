"""Opaque timeline cursors: the (occurred_at, kind, key) of the last item on a page."""

import base64
import binascii
from datetime import UTC, datetime

import orjson

from stageline_shared.errors import ApiError

START: tuple[datetime, int, str] = (datetime(1, 1, 1, tzinfo=UTC), -1, "")


def encode(position: tuple[datetime, int, str]) -> str:
    raw = orjson.dumps([position[0].isoformat(), position[1], position[2]])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str | None) -> tuple[datetime, int, str]:
    if not cursor:
        return START
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, kind, key = orjson.loads(raw)
        position = (datetime.fromisoformat(at), int(kind), str(key))
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError):
        raise ApiError(400, "invalid_cursor", "cursor is not one this API returned") from None
    if position[0].tzinfo is None:
        raise ApiError(400, "invalid_cursor", "cursor is not one this API returned")
    return position
