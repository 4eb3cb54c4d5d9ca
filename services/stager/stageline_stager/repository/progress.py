"""Customer progress (the engine's state in every journey) and what the API reads of it: the
stage rows, the transitions and the stage counters.

The hot path of the stager, so it talks asyncpg directly: one locking SELECT of one row per
customer, binary COPY into per-connection staging tables and one INSERT … ON CONFLICT per table
per batch. A customer's progress is one json document, parsed and written by msgspec:

    {journey: [stage, entered_at, rule_counts, rule_latest]}

with rule_latest as {rule_id: [occurred_at, event_id]} (empty for forward journeys) and times as
integer microseconds since the Unix epoch: read and written without parsing a single date.
"""

from collections.abc import Collection, Sequence

import msgspec

from stageline_shared.raw_connection import Connection
from stageline_stager.engine import CustomerState, from_micros
from stageline_stager.plan import JourneyTransition, Progress

# Rows are locked in customer_id order: two stagers that meet on one customer during a rebalance
# queue behind each other instead of deadlocking. A customer with no row yet needs no lock here:
# its own identity row, locked first, keeps any other batch off it.
_LOCK = """
    SELECT customer_id, state::text FROM customer_progress
    WHERE customer_id = ANY($1::text[])
    ORDER BY customer_id
    FOR UPDATE
"""

STAGING = """
    CREATE TEMP TABLE IF NOT EXISTS staged_progress (customer_id text, state text)
        ON COMMIT DELETE ROWS;
    CREATE TEMP TABLE IF NOT EXISTS staged_stages (
        journey text, customer_id text, stage text, entered_at timestamptz
    ) ON COMMIT DELETE ROWS;
"""

_UPSERT_PROGRESS = """
    INSERT INTO customer_progress (customer_id, state, updated_at)
    SELECT customer_id, state::json, now() FROM staged_progress ORDER BY customer_id
    ON CONFLICT (customer_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at
"""

_UPSERT_STAGES = """
    INSERT INTO customer_stages (journey, customer_id, stage, entered_at, updated_at)
    SELECT journey, customer_id, stage, entered_at, now() FROM staged_stages
    ORDER BY journey, customer_id
    ON CONFLICT (journey, customer_id) DO UPDATE SET
        stage = excluded.stage, entered_at = excluded.entered_at, updated_at = excluded.updated_at
"""

_TRANSITION_COLUMNS = ("journey", "customer_id", "from_stage", "to_stage", "event_id", "occurred_at")

_ADD_COUNTS = """
    INSERT INTO stage_counts (journey, stage, customers)
    SELECT j, s, d FROM unnest($1::text[], $2::text[], $3::bigint[]) AS t(j, s, d)
    ORDER BY j, s
    ON CONFLICT (journey, stage) DO UPDATE SET customers = stage_counts.customers + excluded.customers
"""

# A customer's progress document, read and written (bytes) in one C call each.
decode_document = msgspec.json.Decoder(dict[str, CustomerState]).decode
encode_document = msgspec.json.Encoder().encode


async def lock_progress(raw: Connection, customers: Collection[str]) -> Progress:
    """Lock and read the progress of these customers (those with none are left out)."""
    rows = await raw.fetch(_LOCK, sorted(customers))
    return {customer_id: decode_document(text) for customer_id, text in rows}


async def write_progress(raw: Connection, progress: Progress, moved: Collection[tuple[str, str]]) -> None:
    """Store every customer's progress; upsert the stage rows of the (journey, customer) moved."""
    if progress:
        await raw.copy_records_to_table("staged_progress", columns=("customer_id", "state"), records=[
            (customer_id, encode_document(journeys).decode()) for customer_id, journeys in progress.items()
        ])
        await raw.execute(_UPSERT_PROGRESS)
    staged = [(journey, customer_id, state) for journey, customer_id in sorted(moved)
              if (state := progress.get(customer_id, {}).get(journey)) is not None
              and state.stage is not None]
    if staged:
        await raw.copy_records_to_table(
            "staged_stages", columns=("journey", "customer_id", "stage", "entered_at"),
            records=[(j, c, s.stage, None if s.entered_at is None else from_micros(s.entered_at))
                     for j, c, s in staged],
        )
        await raw.execute(_UPSERT_STAGES)


async def forget_customers(raw: Connection, customers: Sequence[str]) -> None:
    """Drop the progress and stage rows of customers merged into another."""
    if customers:
        await raw.execute("DELETE FROM customer_progress WHERE customer_id = ANY($1::text[])",
                          sorted(customers))
        await raw.execute("DELETE FROM customer_stages WHERE customer_id = ANY($1::text[])",
                          sorted(customers))


async def write_transitions(raw: Connection, transitions: Sequence[JourneyTransition]) -> None:
    if transitions:
        await raw.copy_records_to_table("stage_transitions", columns=_TRANSITION_COLUMNS, records=[
            (journey, t.customer_id, t.from_stage, t.to_stage, t.event_id, t.occurred_at)
            for journey, t in transitions
        ])


async def add_counts(raw: Connection, changed: Sequence[tuple[tuple[str, str], int]]) -> None:
    """Add each (journey, stage)'s change to its counter, in that order (the order rows lock)."""
    if changed:
        await raw.execute(_ADD_COUNTS, [k[0] for k, _ in changed], [k[1] for k, _ in changed],
                          [d for _, d in changed])
