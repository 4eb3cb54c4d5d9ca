"""Touchpoints in Postgres: the batch's new ones copied in, replays and duplicates skipped."""

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import orjson

from stageline_shared.contract.record import TouchpointFields
from stageline_shared.raw_connection import Connection

# Staging tables live per connection and empty themselves at commit; creating them is a no-op
# once they exist (and is undone with a rolled-back first batch, so it is repeated every batch).
STAGING = """
    CREATE TEMP TABLE IF NOT EXISTS staged_touchpoints (
        event_id text, customer_id text, event text, channel text, occurred_at timestamptz,
        received_at timestamptz, clamped boolean, properties text, type text, anonymous_id text,
        user_id text, context text, source text
    ) ON COMMIT DELETE ROWS;
"""
_TOUCHPOINT_COLUMNS = ("event_id", "customer_id", "event", "channel", "occurred_at", "received_at",
                       "clamped", "properties", "type", "anonymous_id", "user_id", "context", "source")

_PRESENT = "SELECT event_id FROM touchpoints WHERE event_id = ANY($1::text[])"
_INSERT_TOUCHPOINTS = """
    INSERT INTO touchpoints
        (event_id, customer_id, event, channel, occurred_at, received_at, clamped, properties,
         type, anonymous_id, user_id, context, source)
    SELECT event_id, customer_id, event, channel, occurred_at, received_at, clamped,
           properties::jsonb, type, anonymous_id, user_id, context::jsonb, source
    FROM staged_touchpoints
    ORDER BY event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
"""


def json_text(value: dict[str, Any]) -> str:
    """JSON that Postgres's jsonb accepts, for any decoded record's properties or context."""
    try:
        return orjson.dumps(value).decode()  # NaN and infinities (not JSON) become null
    except TypeError:  # integers beyond 64 bits: orjson refuses them, the json module does not
        return json.dumps(_finite(value))


def _finite(value: Any) -> Any:
    """The value with NaN and infinities as None, as orjson writes them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


async def insert_new(
    raw: Connection, touchpoints: Sequence[TouchpointFields], canon: Mapping[str, str]
) -> set[str]:
    """Insert under each event's current customer; returns the ids that were new.

    `touchpoints` come in event_id order, with no id twice. The ids already stored are looked up
    and the rest copied straight into the table, which costs Postgres less per row than staging
    them for an INSERT … ON CONFLICT. Should another transaction store one of them in between
    (the same id sent for two customers, applied by two stagers at once: each batch holds its
    customers' identity locks, so a replay waits and then finds its rows stored), the COPY fails
    on the key and the rows go through the staging table instead, which skips the ids stored.
    """
    present = {row[0] for row in await raw.fetch(_PRESENT, [t.event_id for t in touchpoints])}
    rows = [
        (t.event_id, canon[t.customer_id], t.event, t.channel, t.occurred_at, t.received_at,
         t.clamped, json_text(t.properties), t.type, t.anonymous_id, t.user_id,
         json_text(t.context), t.source)
        for t in touchpoints if t.event_id not in present
    ]
    if not rows:
        return set()
    await raw.execute("SAVEPOINT copy_touchpoints")
    try:
        await raw.copy_records_to_table("touchpoints", columns=_TOUCHPOINT_COLUMNS, records=rows)
    except asyncpg.UniqueViolationError:
        await raw.execute("ROLLBACK TO SAVEPOINT copy_touchpoints")
        await raw.copy_records_to_table("staged_touchpoints", columns=_TOUCHPOINT_COLUMNS, records=rows)
        return {row[0] for row in await raw.fetch(_INSERT_TOUCHPOINTS)}
    return {row[0] for row in rows}
