"""Read API routes (a read or admin key): journeys, stage counts, a customer's stage and timeline.

The probes (stageline_shared.probes) stay open: orchestrators and load balancers carry no key.
"""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from stageline_api import cursor, repository
from stageline_api.auth import AUTH_ERRORS, require_read_key
from stageline_api.params import CustomerIdPath, JourneyPath, JourneyQuery, Limit, single_values
from stageline_api.paths import CUSTOMER, TIMELINE
from stageline_api.schemas import (
    CustomerOut,
    CustomerStage,
    JourneyList,
    JourneyOut,
    LastTouchpoint,
    StageCount,
    StageCounts,
    Timeline,
    TimelineItem,
)
from stageline_shared.errors import ApiError, error_docs
from stageline_shared.journeys import Journey

router = APIRouter(dependencies=[Depends(require_read_key), Depends(single_values)],
                   responses=AUTH_ERRORS)
NOT_FOUND = error_docs({404: "Unknown journey or customer",
                        422: "A path or query parameter that breaks its rules, or is given twice"})


async def connection(request: Request) -> AsyncIterator[AsyncConnection]:
    """A connection for reads, in autocommit: each statement reads committed data as it would in a
    read-committed transaction, without the BEGIN and ROLLBACK round trips around it."""
    engine: AsyncEngine = request.app.state.db
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


Conn = Annotated[AsyncConnection, Depends(connection)]


def journey_of(request: Request, name: str) -> Journey:
    """The journey named, or 404 `unknown_journey` listing the known ones."""
    journeys: dict[str, Journey] = request.app.state.journeys
    if name not in journeys:
        raise ApiError(404, "unknown_journey", f"journey {name[:100]!r} is not defined; "
                       f"known journeys: {', '.join(journeys)}")
    return journeys[name]


@router.get("/v1/journeys")
async def list_journeys(request: Request) -> JourneyList:
    """Every journey with its ordered stages."""
    return JourneyList(journeys=[
        JourneyOut(name=j.name, description=j.description, progression=j.progression,
                   stages=j.stages)
        for j in request.app.state.journeys.values()
    ])


@router.get("/v1/journeys/{journey}/stages", responses=NOT_FOUND)
async def journey_stages(request: Request, journey: JourneyPath, conn: Conn) -> StageCounts:
    """Customers currently in each stage, from the counters the stager maintains."""
    definition = journey_of(request, journey)
    counts = await repository.stage_counts(conn, definition.name)
    stages = [StageCount(stage=s, customers=counts.get(s, 0)) for s in definition.stages]
    return StageCounts(journey=definition.name, stages=stages, total=sum(s.customers for s in stages))


# Customer ids may hold any character, "/" included (sent percent-encoded): the routes take
# the rest of the path (paths.py).
@router.get(TIMELINE, responses=NOT_FOUND | error_docs({
    400: "A cursor this API did not return, or a URL that is not UTF-8 once percent-decoded"}))
async def customer_timeline(
    request: Request,
    customer_id: CustomerIdPath,
    conn: Conn,
    after: Annotated[cursor.Position | None, Depends(cursor.after)],
    journey: JourneyQuery = None,
    limit: Limit = 100,
) -> Timeline:
    """Touchpoints and stage changes in time order; follow next_cursor for the next page.

    Any of the customer's ids works: an anonymous id answers with the customer it merged into.
    """
    if journey is not None:
        journey_of(request, journey)
    customer_id, _ = await repository.resolve(conn, customer_id)
    rows = await repository.timeline(conn, customer_id, journey, after or cursor.START, limit + 1)
    if not rows and after is None:
        raise ApiError(404, "unknown_customer", "no touchpoints recorded for this customer")
    page = rows[:limit]
    items = [
        TimelineItem(
            type="touchpoint" if row.kind == 0 else "stage_changed",
            occurred_at=row.occurred_at, event_id=row.event_id, event=row.event,
            channel=row.channel, properties=row.properties, journey=row.journey,
            from_stage=row.from_stage, to_stage=row.to_stage,
        )
        for row in page
    ]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = cursor.encode((last.occurred_at, last.kind, last.sort_key))
    return Timeline(customer_id=customer_id, items=items, next_cursor=next_cursor)


@router.get(CUSTOMER, responses=NOT_FOUND)
async def customer(
    request: Request, customer_id: CustomerIdPath, conn: Conn, journey: JourneyQuery = None
) -> CustomerOut:
    """A customer's stage per journey (or in one), when entered, last touchpoint and aliases.

    Any linked id (anonymous or known) answers with the customer it belongs to.
    """
    if journey is not None:
        journey_of(request, journey)
    customer_id, aliases = await repository.resolve(conn, customer_id)
    last = await repository.last_touchpoint(conn, customer_id)
    if last is None:
        raise ApiError(404, "unknown_customer", "no touchpoints recorded for this customer")
    staged = {row.journey: row for row in await repository.customer_stages(conn, customer_id)}
    # A journey the customer has no stage in yet is listed with stage null.
    stages = [
        CustomerStage(journey=name, stage=row.stage if row else None,
                      entered_at=row.entered_at if row else None)
        for name in sorted(request.app.state.journeys)
        if journey is None or name == journey
        for row in [staged.get(name)]
    ]
    return CustomerOut(
        customer_id=customer_id, aliases=aliases, stages=stages,
        last_touchpoint=LastTouchpoint(event_id=last.event_id, event=last.event,
                                       channel=last.channel, occurred_at=last.occurred_at),
    )
