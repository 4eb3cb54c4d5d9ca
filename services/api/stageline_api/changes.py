"""The change feed over HTTP: every stage change, merge and erasure in feed order.

Positions are given by the dispatcher's relay in commit order (stageline_dispatcher.relay), so a
client that always continues from the `next_cursor` it was given sees every change exactly once,
in order, however the stagers' transactions interleaved. Positions of erased customers' changes
are gone, so positions have gaps; the order never does.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from stageline_api import cursor
from stageline_api.auth import AUTH_ERRORS, require_read_key
from stageline_api.endpoints import Conn, journey_of
from stageline_api.params import JourneyQuery, single_values
from stageline_api.schemas import Change, ChangePage
from stageline_shared import feed
from stageline_shared.errors import error_docs

router = APIRouter(dependencies=[Depends(require_read_key), Depends(single_values)],
                   responses=AUTH_ERRORS)

# A journey filter keeps merges and erasures: they concern every journey's customers.
_PAGE = f"""
    SELECT {", ".join(feed.COLUMNS)} FROM stage_changes
    WHERE position > $1 AND ($2::text IS NULL OR journey = $2 OR kind <> 'stage')
    ORDER BY position LIMIT $3
"""


@router.get("/v1/changes", response_model_exclude_unset=True, responses=error_docs({
    400: "An `after` this API did not return",
    404: "Unknown journey",
    422: "A query parameter that breaks its rules, or is given twice"}))
async def changes(
    request: Request,
    conn: Conn,
    after: Annotated[str | None, Query(
        description="The `next_cursor` of the previous page; none: from the start")] = None,
    journey: JourneyQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Changes per page")] = 100,
) -> ChangePage:
    """Changes after a cursor, oldest first. Poll with the `next_cursor` of each answer, also
    when a page is empty: it stays where it is until there is more."""
    if journey is not None:
        journey_of(request, journey)
    position = cursor.position(after, "after") if after else 0
    raw: Any = (await conn.get_raw_connection()).driver_connection
    rows = await raw.fetch(_PAGE, position, journey, limit)
    items = [Change(**feed.item(row)) for row in rows]
    return ChangePage(changes=items, next_cursor=str(rows[-1]["position"] if rows else position))
