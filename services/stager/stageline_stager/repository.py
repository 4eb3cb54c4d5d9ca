"""Postgres writes of one polled batch: touchpoints, stages, transitions, counts and offsets.

Everything here runs inside the caller's transaction (one per batch), a statement or two per table.
Replays are safe: only touchpoints whose event_id is not stored yet are inserted, and only the
ones actually inserted go on to change stages, so a redelivered record changes nothing twice.
"""

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from stageline_shared.database import driver_connection
from stageline_shared.events import TouchpointFields
from stageline_stager.engine import JourneyEngine, Transition
from stageline_stager.identity import erase, forget_identities, lock_identities, repoint, suppressed_ids
from stageline_stager.merges import Conflict, event_ids, plan_links
from stageline_stager.plan import (
    CountDeltas,
    by_customer,
    customers_to_lock,
    plan_stages,
    split_batch,
    without_suppressed,
)
from stageline_stager.progress import STAGING, forget_customers, lock_progress, write_progress

# Staging tables live per connection and empty themselves at commit; creating them is a no-op
# once they exist (and is undone with a rolled-back first batch, so it is repeated every batch).
_STAGING = """
    CREATE TEMP TABLE IF NOT EXISTS staged_touchpoints (
        event_id text, customer_id text, event text, channel text, occurred_at timestamptz,
        received_at timestamptz, clamped boolean, properties text, type text, anonymous_id text,
        user_id text, context text, source text
    ) ON COMMIT DELETE ROWS;
""" + STAGING
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

_TRANSITION_COLUMNS = ("journey", "customer_id", "from_stage", "to_stage", "event_id", "occurred_at")

_ADD_COUNTS = text("""
    INSERT INTO stage_counts (journey, stage, customers)
    SELECT j, s, d FROM unnest(CAST(:journeys AS text[]), CAST(:stages AS text[]),
                               CAST(:deltas AS bigint[])) AS t(j, s, d)
    ORDER BY j, s
    ON CONFLICT (journey, stage) DO UPDATE SET customers = stage_counts.customers + excluded.customers
""")

# GREATEST: a batch finishing late on a stager that already lost the partition must not move
# the offset back under the new owner.
_STORE_OFFSETS = text("""
    INSERT INTO consumer_offsets (group_id, cluster_id, topic, partition, next_offset)
    SELECT :group_id, :cluster_id, t, p, o
    FROM unnest(CAST(:topics AS text[]), CAST(:partitions AS int[]), CAST(:offsets AS bigint[]))
         AS u(t, p, o)
    ORDER BY t, p
    ON CONFLICT (group_id, cluster_id, topic, partition) DO UPDATE
    SET next_offset = GREATEST(consumer_offsets.next_offset, excluded.next_offset),
        updated_at = now()
""")

# The offsets before this batch's, locked until it commits (another stager's batch on the same
# partition, during a rebalance, then waits for this one).
_LOCK_OFFSETS = text("""
    SELECT topic, partition, next_offset FROM consumer_offsets
    WHERE group_id = :group_id AND cluster_id = :cluster_id
      AND (topic, partition) IN (SELECT * FROM unnest(CAST(:topics AS text[]), CAST(:partitions AS int[])))
    ORDER BY topic, partition
    FOR UPDATE
""")

_READ_OFFSETS = text("""
    SELECT topic, partition, next_offset FROM consumer_offsets
    WHERE group_id = :group_id AND cluster_id = :cluster_id AND topic = ANY(CAST(:topics AS text[]))
""")


@dataclass
class BatchOutcome:
    """What one batch did, for metrics and logs."""

    applied: int = 0
    duplicates: int = 0
    suppressed: int = 0
    erased: int = 0
    merges: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    transitions: list[tuple[str, Transition]] = field(default_factory=list)

    def add(self, other: "BatchOutcome") -> None:
        """Count another part of the same batch in."""
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.suppressed += other.suppressed
        self.erased += other.erased
        self.merges += other.merges
        self.conflicts += other.conflicts
        self.transitions += other.transitions


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


async def _insert_new(
    raw: Any, touchpoints: Sequence[TouchpointFields], canon: Mapping[str, str]
) -> set[str]:
    """Insert under each event's current customer; returns the ids that were new.

    `touchpoints` come in event_id order, with no id twice. The ids already stored are looked up
    and the rest copied straight into the table, a quarter less Postgres CPU per row than staging
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


async def _write_transitions(raw: Any, transitions: Sequence[tuple[str, Transition]]) -> None:
    if transitions:
        await raw.copy_records_to_table("stage_transitions", columns=_TRANSITION_COLUMNS, records=[
            (journey, t.customer_id, t.from_stage, t.to_stage, t.event_id, t.occurred_at)
            for journey, t in transitions
        ])


async def _add_counts(conn: AsyncConnection, changed: Sequence[tuple[tuple[str, str], int]]) -> None:
    if not changed:
        return
    await conn.execute(_ADD_COUNTS, {
        "journeys": [k[0] for k, _ in changed],
        "stages": [k[1] for k, _ in changed],
        "deltas": [d for _, d in changed],
    })


async def apply_touchpoints(
    conn: AsyncConnection, engines: Iterable[JourneyEngine], touchpoints: Sequence[TouchpointFields]
) -> BatchOutcome:
    """Store new touchpoints, stitch identities, move customers through every journey, erase.

    Order inside the transaction: lock the batch's identities (id order), drop events of erased
    ids, plan and apply merges, insert touchpoints (duplicates skipped), then lock the affected
    customers' progress rows (customer order) and write progress, changed stages, transitions
    and counts.
    Erase requests run last, so an erase removes what its own batch stored too.
    """
    engines = list(engines)
    intake = split_batch(touchpoints)
    outcome = BatchOutcome(duplicates=intake.duplicates)
    deltas = CountDeltas()
    events = intake.events

    raw = await driver_connection(conn)
    await raw.execute(_STAGING)
    if events:
        canon = await lock_identities(raw, [i for t in events for i in event_ids(t)])
        # Read after the locks: an erase committed while we waited is seen here.
        hidden = await suppressed_ids(raw, list(canon))
        if hidden:
            kept = without_suppressed(events, hidden)
            outcome.suppressed = len(events) - len(kept)
            events = kept
            await forget_identities(conn, hidden)
        merges, conflicts = plan_links(events, canon)
        for merge in merges:
            await repoint(conn, merge)
        inserted = await _insert_new(raw, events, canon) if events else set()
        outcome.applied = len(inserted)
        outcome.duplicates += len(events) - len(inserted)
        outcome.merges = len(merges)
        outcome.conflicts = [c for c in conflicts if c.event_id in inserted]
        grouped = by_customer((t for t in events if t.event_id in inserted), canon)
        customers = customers_to_lock(grouped, merges)
        if customers:
            plan = plan_stages(engines, grouped, merges, await lock_progress(raw, customers))
            await forget_customers(raw, plan.forgotten)
            await write_progress(raw, plan.progress, plan.moved)
            await _write_transitions(raw, plan.transitions)
            outcome.transitions = plan.transitions
            deltas.update(plan.deltas)

    for request in intake.erasures:
        left = await erase(conn, request.customer_id, request.event_id)
        outcome.erased += 1
        for journey, stage in left:
            deltas.move(journey, stage, None)
    await _add_counts(conn, deltas.changed())
    return outcome


class OffsetsWentBack(Exception):
    """Stored offsets are behind what this stager read or stored itself: Postgres lost commits it
    had acknowledged (a crash with synchronous_commit off, a failover, a restore). Storing this
    batch's offsets would skip the records of those commits."""

    def __init__(self, behind: Mapping[tuple[str, int], tuple[int | None, int]]) -> None:
        self.behind = dict(behind)
        described = ", ".join(f"{topic}/{partition}: {'none' if stored is None else stored} < {expected}"
                              for (topic, partition), (stored, expected) in sorted(self.behind.items()))
        super().__init__(f"stored offsets went back ({described})")


async def store_offsets(
    conn: AsyncConnection, group_id: str, cluster_id: str, offsets: Mapping[tuple[str, int], int],
    expected: Mapping[tuple[str, int], int] | None = None,
) -> None:
    """Record the next offset to read per partition, in the batch's transaction.

    `expected`: per partition, the offset this stager last read or stored; OffsetsWentBack when
    the stored one is behind it (or gone), so nothing past unapplied records is ever stored. A
    stored offset ahead of it (another owner moved on during a rebalance) is kept: GREATEST.
    """
    items = sorted(offsets.items())
    keys = {"group_id": group_id, "cluster_id": cluster_id,
            "topics": [k[0] for k, _ in items], "partitions": [k[1] for k, _ in items]}
    if expected:
        stored = {(row.topic, row.partition): row.next_offset
                  for row in await conn.execute(_LOCK_OFFSETS, keys)}
        behind = {key: (stored.get(key), offset) for key, offset in expected.items()
                  if key in offsets and stored.get(key, -1) < offset}
        if behind:
            raise OffsetsWentBack(behind)
    await conn.execute(_STORE_OFFSETS, {**keys, "offsets": [o for _, o in items]})


async def read_offsets(
    conn: AsyncConnection, group_id: str, cluster_id: str, topics: Sequence[str]
) -> dict[tuple[str, int], int]:
    result = await conn.execute(
        _READ_OFFSETS, {"group_id": group_id, "cluster_id": cluster_id, "topics": list(topics)}
    )
    return {(row.topic, row.partition): row.next_offset for row in result}
