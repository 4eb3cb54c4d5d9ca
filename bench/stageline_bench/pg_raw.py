"""The raw Postgres reference: asyncpg at its best on the stager's kind of write.

Per transaction of 5,000 rows: COPY into a temp table, INSERT … ON CONFLICT DO NOTHING into
touchpoints, and one stage upsert per (journey, customer) of the batch. No journey logic, no
identities, no transitions or counters: the floor under what the stager does per batch.
"""

import random
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from stageline_bench.events import BASE_TIME, CHANNELS, EVENT_NAMES, customer_id
from stageline_bench.progress import log

_TEMP = """
    CREATE TEMP TABLE bench_in (
        event_id text, customer_id text, event text, channel text, occurred_at timestamptz,
        received_at timestamptz, properties jsonb
    ) ON COMMIT DELETE ROWS
"""
_COLUMNS = ["event_id", "customer_id", "event", "channel", "occurred_at", "received_at", "properties"]
_INSERT = """
    INSERT INTO touchpoints (event_id, customer_id, event, channel, occurred_at, received_at,
                             properties, source)
    SELECT event_id, customer_id, event, channel, occurred_at, received_at, properties, 'bench'
    FROM bench_in ORDER BY event_id
    ON CONFLICT (event_id) DO NOTHING
"""
_UPSERT_STAGES = """
    INSERT INTO customer_stages (journey, customer_id, stage, entered_at)
    SELECT j.journey, b.customer_id, j.stage, b.occurred_at
    FROM (SELECT DISTINCT ON (customer_id) customer_id, event_id, occurred_at
          FROM bench_in ORDER BY customer_id, occurred_at DESC) AS b
    CROSS JOIN unnest($1::text[], $2::text[]) AS j(journey, stage)
    ORDER BY j.journey, b.customer_id
    ON CONFLICT (journey, customer_id) DO UPDATE SET
        stage = excluded.stage, entered_at = LEAST(customer_stages.entered_at, excluded.entered_at),
        updated_at = now()
"""


def _rows(start: int, count: int, customers: int, rng: random.Random) -> list[tuple[Any, ...]]:
    rows = []
    for index in range(start, start + count):
        occurred: datetime = BASE_TIME + timedelta(seconds=rng.randrange(86_400))
        rows.append((
            f"rawpg-e-{index:09d}", customer_id("rawpg", rng.randrange(customers)),
            rng.choice(EVENT_NAMES), rng.choice(CHANNELS), occurred, occurred,
            f'{{"sku": "SKU-{rng.randrange(1000)}"}}',
        ))
    return rows


async def raw_postgres(
    database_url: str, rows: int, customers: int, per_txn: int, journeys: Sequence[tuple[str, str]]
) -> float:
    """Write `rows` rows; returns the seconds spent in the database (row generation excluded)."""
    rng = random.Random(7)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(_TEMP)
        names, stages = [j for j, _ in journeys], [s for _, s in journeys]
        spent = 0.0
        reported = time.monotonic()
        for start in range(0, rows, per_txn):
            chunk = _rows(start, min(per_txn, rows - start), customers, rng)
            began = time.perf_counter()
            async with conn.transaction():
                await conn.copy_records_to_table("bench_in", records=chunk, columns=_COLUMNS)
                await conn.execute(_INSERT)
                await conn.execute(_UPSERT_STAGES, names, stages)
            spent += time.perf_counter() - began
            if time.monotonic() - reported > 10:
                reported = time.monotonic()
                log.info("  raw Postgres: %d of %d rows (%.0f rows/s)", start + len(chunk), rows,
                         (start + len(chunk)) / spent)
        return spent
    finally:
        await conn.close()
