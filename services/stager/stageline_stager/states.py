"""Customer stage rows: lock the batch's existing ones, write all of them back in one upsert.

The hot path of the stager, so it talks asyncpg directly: one locking SELECT, one binary COPY
into a per-connection staging table and one INSERT … ON CONFLICT per batch. Rule state is json
(readable in psql, stored as written) and parsed and written with orjson, never through
SQLAlchemy's codecs.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from stageline_stager.engine import CustomerState

Key = tuple[str, str]  # (journey, customer_id)

# Rows are locked in (journey, customer_id) order: two stagers that meet on one customer during
# a rebalance queue behind each other instead of deadlocking. A customer with no row yet needs
# no lock here: its own identity row, locked first, keeps any other batch off it.
_LOCK = """
    SELECT journey, customer_id, stage, entered_at, last_event_id, last_touchpoint_at,
           rule_counts::text, rule_latest::text
    FROM customer_stages
    WHERE journey = ANY($1::text[]) AND customer_id = ANY($2::text[])
    ORDER BY journey, customer_id
    FOR UPDATE
"""

STAGING = """
    CREATE TEMP TABLE IF NOT EXISTS staged_states (
        journey text, customer_id text, stage text, entered_at timestamptz, last_event_id text,
        last_touchpoint_at timestamptz, rule_counts text, rule_latest text
    ) ON COMMIT DELETE ROWS
"""
_COLUMNS = ("journey", "customer_id", "stage", "entered_at", "last_event_id",
            "last_touchpoint_at", "rule_counts", "rule_latest")

_UPSERT = """
    INSERT INTO customer_stages AS s
        (journey, customer_id, stage, entered_at, last_event_id, last_touchpoint_at, rule_counts,
         rule_latest, updated_at)
    SELECT journey, customer_id, stage, entered_at, last_event_id, last_touchpoint_at,
           rule_counts::json, rule_latest::json, now()
    FROM staged_states ORDER BY journey, customer_id
    ON CONFLICT (journey, customer_id) DO UPDATE SET
        stage = excluded.stage, entered_at = excluded.entered_at,
        last_event_id = excluded.last_event_id, last_touchpoint_at = excluded.last_touchpoint_at,
        rule_counts = excluded.rule_counts, rule_latest = excluded.rule_latest,
        updated_at = excluded.updated_at
"""

_DELETE = """
    DELETE FROM customer_stages
    WHERE (journey, customer_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""

_parse_time = datetime.fromisoformat


def _state(row: Any) -> CustomerState:
    latest = orjson.loads(row[7])
    return CustomerState(
        stage=row[2], entered_at=row[3], last_event_id=row[4], last_touchpoint_at=row[5],
        rule_counts=orjson.loads(row[6]),
        rule_latest={rule: (_parse_time(at), event_id) for rule, (at, event_id) in latest.items()},
    )


def _record(key: Key, state: CustomerState) -> tuple[Any, ...]:
    # orjson writes each (datetime, event_id) as [RFC 3339 text, event_id], as _state reads it.
    return (key[0], key[1], state.stage, state.entered_at, state.last_event_id,
            state.last_touchpoint_at, orjson.dumps(state.rule_counts).decode(),
            orjson.dumps(state.rule_latest).decode())


async def lock_states(
    raw: Any, journeys: Sequence[str], customers: Sequence[str]
) -> dict[Key, CustomerState]:
    """Lock and read the existing rows of these customers in these journeys."""
    rows = await raw.fetch(_LOCK, list(journeys), sorted(customers))
    return {(row[0], row[1]): _state(row) for row in rows}


async def write_states(raw: Any, states: Mapping[Key, CustomerState]) -> None:
    """Insert or overwrite the rows of these (journey, customer) states."""
    if not states:
        return
    await raw.copy_records_to_table(
        "staged_states", records=[_record(key, state) for key, state in states.items()],
        columns=_COLUMNS,
    )
    await raw.execute(_UPSERT)


async def delete_states(raw: Any, keys: Sequence[Key]) -> None:
    """Drop the rows of customers merged into another."""
    if keys:
        await raw.execute(_DELETE, [k[0] for k in keys], [k[1] for k in keys])
