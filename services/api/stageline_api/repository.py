"""Read queries of the API; all index-backed (counts come from maintained counters)."""

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# kind 0 = touchpoint, 1 = stage change: a change sorts right after the touchpoint causing it.
_TIMELINE = text("""
    SELECT * FROM (
        SELECT occurred_at, 0 AS kind, event_id AS sort_key, event_id, event, channel, properties,
               NULL AS journey, NULL AS from_stage, NULL AS to_stage
        FROM touchpoints
        WHERE customer_id = :customer_id
          AND (occurred_at, 0, event_id) > (:after_at, :after_kind, :after_key)
        UNION ALL
        SELECT occurred_at, 1, event_id || ' ' || journey, event_id, NULL, NULL, NULL,
               journey, from_stage, to_stage
        FROM stage_transitions
        WHERE customer_id = :customer_id AND (CAST(:journey AS text) IS NULL OR journey = :journey)
          AND (occurred_at, 1, event_id || ' ' || journey) > (:after_at, :after_kind, :after_key)
    ) AS items
    ORDER BY occurred_at, kind, sort_key
    LIMIT :limit
""")


async def stage_counts(conn: AsyncConnection, journey: str) -> dict[str, int]:
    """The counters of one journey, by stage. The most frequent read, so it runs on the asyncpg
    connection itself: SQLAlchemy's execute was a large part of the API's CPU per request."""
    raw: Any = (await conn.get_raw_connection()).driver_connection
    rows = await raw.fetch("SELECT stage, customers FROM stage_counts WHERE journey = $1", journey)
    return dict(rows)


async def customer_stages(conn: AsyncConnection, customer_id: str) -> list[Any]:
    result = await conn.execute(
        text("SELECT journey, stage, entered_at FROM customer_stages "
             "WHERE customer_id = :customer_id ORDER BY journey"),
        {"customer_id": customer_id},
    )
    return list(result)


async def last_touchpoint(conn: AsyncConnection, customer_id: str) -> Any | None:
    result = await conn.execute(
        text("SELECT event_id, event, channel, occurred_at FROM touchpoints "
             "WHERE customer_id = :customer_id ORDER BY occurred_at DESC, event_id DESC LIMIT 1"),
        {"customer_id": customer_id},
    )
    return result.first()


async def timeline(
    conn: AsyncConnection,
    customer_id: str,
    journey: str | None,
    after: tuple[datetime, int, str],
    limit: int,
) -> list[Any]:
    result = await conn.execute(_TIMELINE, {
        "customer_id": customer_id, "journey": journey, "after_at": after[0],
        "after_kind": after[1], "after_key": after[2], "limit": limit,
    })
    return list(result)


async def resolve(conn: AsyncConnection, any_id: str) -> tuple[str, list[str]]:
    """The customer an id (user id or anonymous id) belongs to, and that customer's other ids."""
    customer = await conn.scalar(
        text("SELECT customer_id FROM identities WHERE id = :id"), {"id": any_id}
    )
    customer = customer or any_id
    result = await conn.execute(
        text("SELECT id FROM identities WHERE customer_id = :c AND id <> :c ORDER BY id"),
        {"c": customer},
    )
    return customer, [row.id for row in result]
