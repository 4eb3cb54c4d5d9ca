"""Audiences: who is in a stage now, and since when.

A JSON page is one range scan of the customer_stages_audience index in (entered_at, customer_id)
order, so it costs the same at 10M customers as at 1,000; the cursor is the last row's key. With
`Accept: text/csv` or `application/x-ndjson` the whole stage (within the filters) is streamed from
a server-side cursor, never held in memory.
"""

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from stageline_api import cursor as cursor_codec
from stageline_api.auth import AUTH_ERRORS, require_read_key
from stageline_api.endpoints import Conn, journey_of
from stageline_api.params import JourneyPath, StagePath, single_values
from stageline_api.schemas import Audience, AudienceMember
from stageline_shared.contract.limits import CUSTOMER_ID
from stageline_shared.errors import ApiError, error_docs
from stageline_shared.raw_connection import connection as raw_connection

router = APIRouter(dependencies=[Depends(require_read_key), Depends(single_values)],
                   responses=AUTH_ERRORS)

AUDIENCE = "/v1/journeys/{journey}/stages/{stage}/customers"
CSV, NDJSON = "text/csv", "application/x-ndjson"
STREAM_ROWS = 2000  # rows fetched per round trip while streaming
Key = tuple[datetime, str]


def encode_cursor(key: Key) -> str:
    return cursor_codec.pack([key[0].isoformat(), key[1]])


def decode_cursor(cursor: str) -> Key:
    """The key an audience cursor holds; 400 `invalid_cursor` for anything this API did not write."""
    invalid = ApiError(400, "invalid_cursor", "cursor is not one this API returned")
    if len(cursor) > 4 * CUSTOMER_ID.max:
        raise invalid
    try:
        at, customer = cursor_codec.unpack(cursor)
        entered = datetime.fromisoformat(at)
    except (ValueError, TypeError):
        raise invalid from None
    if type(customer) is not str or entered.tzinfo is None or "\x00" in customer \
            or len(customer) > CUSTOMER_ID.max:
        raise invalid
    return entered.astimezone(UTC), customer


def _query(journey: str, stage: str, before: datetime | None, after: datetime | None,
           start: Key | None, limit: int | None) -> tuple[str, list[Any]]:
    """Only the conditions given: each bound is a range condition of the index, so a scan stops
    where the filter ends instead of filtering to the end of the stage."""
    where, args = ["journey = $1", "stage = $2"], [journey, stage]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if start is not None:
        where.append(f"(entered_at, customer_id) > ({arg(start[0])}, {arg(start[1])})")
    if after is not None:
        where.append(f"entered_at >= {arg(after)}")
    if before is not None:
        where.append(f"entered_at < {arg(before)}")
    sql = (f"SELECT customer_id, entered_at FROM customer_stages WHERE {' AND '.join(where)} "
           "ORDER BY entered_at, customer_id")
    if limit is not None:
        sql += f" LIMIT {arg(limit)}"
    return sql, args


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ApiError(422, "invalid_request", f"query.{name}: give a time zone (e.g. 2026-12-03T10:00:00Z)")
    return value


def _wants(request: Request) -> str | None:
    accept = request.headers.get("accept", "")
    for kind in (CSV, NDJSON):
        if kind in accept:
            return kind
    return None


@router.get(AUDIENCE, response_model=Audience, responses=error_docs({
    400: "A cursor this API did not return",
    404: "Unknown journey or stage",
    422: "A path or query parameter that breaks its rules, or is given twice",
}) | {200: {"content": {CSV: {}, NDJSON: {}}, "description": (
    "A page (JSON), or with Accept: text/csv or application/x-ndjson every customer of the stage "
    "within the filters, streamed")}})
async def audience(
    request: Request,
    journey: JourneyPath,
    stage: StagePath,
    conn: Conn,
    entered_before: Annotated[datetime | None, Query(
        description="Only customers who entered the stage before this time (exclusive)")] = None,
    entered_after: Annotated[datetime | None, Query(
        description="Only customers who entered the stage at or after this time")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Customers per page (JSON)")] = 100,
    cursor: Annotated[str | None, Query(description="The `next_cursor` of the previous page")] = None,
) -> Any:
    """The customers currently in a stage, oldest entry first, with when they entered it.

    "In `intent` for more than an hour": `entered_before` = now minus one hour.
    """
    definition = journey_of(request, journey)
    if stage not in definition.stages:
        raise ApiError(404, "unknown_stage", f"stage {stage!r} is not one of journey "
                       f"{definition.name!r}'s stages: {', '.join(definition.stages)}")
    before = _aware(entered_before, "entered_before")
    after = _aware(entered_after, "entered_after")
    start = decode_cursor(cursor) if cursor else None
    kind = _wants(request)
    if kind is not None:
        sql, args = _query(journey, stage, before, after, start, None)
        return StreamingResponse(_stream(request.app.state.db, sql, args, kind), media_type=kind,
                                 headers={"Content-Disposition": f'attachment; filename="{journey}-{stage}.'
                                          f'{"csv" if kind == CSV else "ndjson"}"'})
    sql, args = _query(journey, stage, before, after, start, limit + 1)
    raw: Any = (await conn.get_raw_connection()).driver_connection  # autocommit: no BEGIN needed
    rows = await raw.fetch(sql, *args)
    page = rows[:limit]
    return Audience(
        journey=journey, stage=stage,
        customers=[AudienceMember(customer_id=r[0], entered_at=r[1]) for r in page],
        next_cursor=encode_cursor((page[-1][1], page[-1][0])) if len(rows) > limit else None,
    )


async def _stream(db: AsyncEngine, sql: str, args: list[Any], kind: str) -> AsyncIterator[bytes]:
    """Rows from a server-side cursor, in chunks of STREAM_ROWS, each encoded as it arrives."""
    async with db.connect() as conn:
        raw: Any = await raw_connection(conn)  # inside a transaction, as a cursor needs
        if kind == CSV:
            yield b"customer_id,entered_at\r\n"
        cursor = await raw.cursor(sql, *args)
        while rows := await cursor.fetch(STREAM_ROWS):
            if kind == CSV:
                out = io.StringIO()
                csv.writer(out).writerows((r[0], r[1].isoformat()) for r in rows)
                yield out.getvalue().encode()
            else:
                yield b"".join(orjson.dumps({"customer_id": r[0], "entered_at": r[1]}) + b"\n"
                               for r in rows)
