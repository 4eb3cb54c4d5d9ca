"""The API's dataset, made inside Postgres (INSERT … SELECT generate_series), not by the pipeline.

1% of the customers ("hot") get 200 touchpoints each, so their first timeline page is a full 100
items; the rest share the remaining touchpoints, interleaved in time as real traffic would be.
Every customer has a stage in every journey and one transition into it; stage_counts agrees.
In the first journey customers are spread over the stages; in the others all are in the first
stage (a stage of every customer, for the audience measurements). They entered at times spread
over a year.
Indexes and primary keys are dropped for the load and rebuilt after, as a bulk load should.
"""

import asyncio
import time
from typing import Any

import asyncpg

from stageline_bench.progress import log

HOT_TOUCHPOINTS = 200
TABLES = ("touchpoints", "customer_stages", "stage_transitions")
_CUSTOMER = "'api-c-' || lpad(({n})::text, 7, '0')"
_TOUCHPOINTS = """
    INSERT INTO touchpoints (event_id, customer_id, event, channel, occurred_at, received_at,
                             properties, source)
    SELECT 'api-e-' || g, {customer},
           (ARRAY['Ad Clicked','Product Viewed','Review Read','Product Added','Order Completed',
                  'Ticket Resolved','Review Written','Newsletter Opened'])[1 + g % 8],
           (ARRAY['web','email','store','ads','support'])[1 + (g / 8) % 5],
           t, t, jsonb_build_object('sku', 'SKU-' || (g % 1000)), 'bench'
    FROM generate_series($1::bigint, $2::bigint) AS g,
         LATERAL (SELECT timestamptz '2026-01-01 00:00:00+00'
                         + make_interval(secs => (g * 7919) % 31536000) AS t) AS times
"""
_STAGES = """
    INSERT INTO customer_stages (journey, customer_id, stage, entered_at)
    SELECT $1, {customer}, ($2::text[])[1 + c % cardinality($2::text[])],
           timestamptz '2026-01-01 00:00:00+00' + make_interval(secs => (c * 7919) % 31536000)
    FROM generate_series(0, $3::bigint - 1) AS c
"""
_TRANSITIONS = """
    INSERT INTO stage_transitions (journey, customer_id, from_stage, to_stage, event_id, occurred_at)
    SELECT journey, customer_id, NULL, stage, 'api-transition-' || journey, entered_at
    FROM customer_stages WHERE journey = $1
"""
_COUNTS = """
    INSERT INTO stage_counts (journey, stage, customers)
    SELECT journey, stage, count(*) FROM customer_stages GROUP BY journey, stage
    ON CONFLICT (journey, stage) DO UPDATE SET customers = excluded.customers
"""
_INDEXES = """
    SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition,
           c.conname AS constraint_name, c.contype AS constraint_type
    FROM pg_index i
    LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.contype IN ('p', 'u')
    WHERE i.indrelid = $1::regclass
"""


def customer_sql(hot: int, hot_total: int, customers: int) -> str:
    number = (f"CASE WHEN g < {hot_total} THEN g % {hot} "
              f"ELSE {hot} + (g - {hot_total}) % {customers - hot} END")
    return _CUSTOMER.format(n=number)


def api_customer(number: int) -> str:
    return f"api-c-{number:07d}"


async def _drop_indexes(conn: asyncpg.Connection, table: str) -> list[Any]:
    indexes = list(await conn.fetch(_INDEXES, table))
    for index in indexes:
        if index["constraint_name"]:
            await conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{index["constraint_name"]}"')
        else:
            await conn.execute(f"DROP INDEX {index['name']}")
    return indexes


async def _restore_indexes(conn: asyncpg.Connection, table: str, indexes: list[Any]) -> None:
    for index in indexes:
        started = time.monotonic()
        await conn.execute(index["definition"])
        if index["constraint_name"]:
            kind = "PRIMARY KEY" if index["constraint_type"] == "p" else "UNIQUE"
            await conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{index["constraint_name"]}" '
                               f"{kind} USING INDEX {index['name']}")
        log.info("  API dataset: index %s rebuilt (%.0fs)", index["name"], time.monotonic() - started)


async def _insert_touchpoints(url: str, sql: str, ranges: list[tuple[int, int]], done: list[int],
                              total: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET synchronous_commit = off")
        for low, high in ranges:
            await conn.execute(sql, low, high)
            done[0] += high - low + 1
            log.info("  API dataset: %d of %d touchpoints", done[0], total)
    finally:
        await conn.close()


async def load_dataset(url: str, customers: int, touchpoints: int, hot: int,
                       journeys: list[tuple[str, list[str]]], workers: int = 2) -> dict[str, float]:
    """Fill an empty migrated database; returns seconds per step."""
    hot_total = hot * HOT_TOUCHPOINTS
    if not 0 < hot < customers or touchpoints - hot_total < customers - hot:
        raise ValueError(f"{touchpoints} touchpoints cannot give {hot} customers {HOT_TOUCHPOINTS} "
                         f"each and every other of {customers} customers at least one")
    timings: dict[str, float] = {}
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET maintenance_work_mem = '1GB'; SET synchronous_commit = off")
        dropped = {table: await _drop_indexes(conn, table) for table in TABLES}

        started = time.monotonic()
        sql = _TOUCHPOINTS.format(customer=customer_sql(hot, hot_total, customers))
        step = 1_000_000
        ranges = [(low, min(low + step, touchpoints) - 1) for low in range(0, touchpoints, step)]
        done = [0]
        await asyncio.gather(*(
            _insert_touchpoints(url, sql, ranges[w::workers], done, touchpoints) for w in range(workers)
        ))
        timings["touchpoints_s"] = time.monotonic() - started

        started = time.monotonic()
        for number, (name, stages) in enumerate(journeys):
            await conn.execute(_STAGES.format(customer=_CUSTOMER.format(n="c")), name,
                               stages if number == 0 else stages[:1], customers)
            await conn.execute(_TRANSITIONS, name)
        await conn.execute(_COUNTS)
        timings["stages_s"] = time.monotonic() - started
        log.info("  API dataset: stages and transitions written (%.0fs)", timings["stages_s"])

        started = time.monotonic()
        for table in TABLES:
            await _restore_indexes(conn, table, dropped[table])
        timings["indexes_s"] = time.monotonic() - started

        started = time.monotonic()
        for table in TABLES:
            await conn.execute(f"VACUUM (ANALYZE) {table}")
        timings["vacuum_analyze_s"] = time.monotonic() - started
        log.info("  API dataset: vacuumed and analyzed (%.0fs)", timings["vacuum_analyze_s"])
        return timings
    finally:
        await conn.close()
