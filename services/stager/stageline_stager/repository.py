"""Postgres writes of one polled batch: touchpoints, stages, transitions, counts and offsets.

Everything here runs inside the caller's transaction (one per batch), one statement per table.
Replays are safe: touchpoints are inserted ON CONFLICT DO NOTHING and only the ones actually
inserted go on to change stages, so a redelivered record changes nothing twice.
"""

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from stageline_shared.events import Touchpoint

from stageline_stager.engine import CustomerState, JourneyEngine, Transition

_INSERT_TOUCHPOINTS = text("""
    INSERT INTO touchpoints
        (event_id, customer_id, event, channel, occurred_at, received_at, clamped, properties)
    SELECT e, c, n, ch, o, r, cl, CAST(p AS jsonb)
    FROM unnest(CAST(:event_ids AS text[]), CAST(:customers AS text[]), CAST(:events AS text[]),
                CAST(:channels AS text[]), CAST(:occurred AS timestamptz[]),
                CAST(:received AS timestamptz[]), CAST(:clamped AS boolean[]),
                CAST(:properties AS text[])) AS t(e, c, n, ch, o, r, cl, p)
    ORDER BY e
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
""")

# Rows are created, then locked, in (journey, customer_id) order: two stagers that meet on one
# customer during a rebalance queue behind each other instead of deadlocking.
_ENSURE_CUSTOMERS = text("""
    INSERT INTO customer_stages (journey, customer_id)
    SELECT j, c FROM unnest(CAST(:journeys AS text[]), CAST(:customers AS text[])) AS t(j, c)
    ORDER BY j, c
    ON CONFLICT DO NOTHING
""")

_LOCK_CUSTOMERS = text("""
    SELECT s.journey, s.customer_id, s.stage, s.entered_at, s.last_event_id, s.last_touchpoint_at,
           s.rule_counts, s.rule_latest
    FROM customer_stages s
    JOIN unnest(CAST(:journeys AS text[]), CAST(:customers AS text[])) AS t(j, c)
      ON s.journey = t.j AND s.customer_id = t.c
    ORDER BY s.journey, s.customer_id
    FOR UPDATE OF s
""")

_UPDATE_CUSTOMERS = text("""
    UPDATE customer_stages s SET
        stage = t.stage, entered_at = t.entered_at, last_event_id = t.last_event_id,
        last_touchpoint_at = t.last_touchpoint_at, rule_counts = CAST(t.rule_counts AS jsonb),
        rule_latest = CAST(t.rule_latest AS jsonb), updated_at = now()
    FROM unnest(CAST(:journeys AS text[]), CAST(:customers AS text[]), CAST(:stages AS text[]),
                CAST(:entered AS timestamptz[]), CAST(:last_ids AS text[]),
                CAST(:last_at AS timestamptz[]), CAST(:counts AS text[]),
                CAST(:rule_latest AS text[]))
         AS t(journey, customer_id, stage, entered_at, last_event_id, last_touchpoint_at,
              rule_counts, rule_latest)
    WHERE s.journey = t.journey AND s.customer_id = t.customer_id
""")

_INSERT_TRANSITIONS = text("""
    INSERT INTO stage_transitions (journey, customer_id, from_stage, to_stage, event_id, occurred_at)
    SELECT * FROM unnest(CAST(:journeys AS text[]), CAST(:customers AS text[]),
                         CAST(:froms AS text[]), CAST(:tos AS text[]), CAST(:event_ids AS text[]),
                         CAST(:occurred AS timestamptz[]))
""")

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

_READ_OFFSETS = text("""
    SELECT topic, partition, next_offset FROM consumer_offsets
    WHERE group_id = :group_id AND cluster_id = :cluster_id AND topic = ANY(CAST(:topics AS text[]))
""")


@dataclass
class BatchOutcome:
    """What one batch did, for metrics and logs."""

    applied: int = 0
    duplicates: int = 0
    transitions: list[tuple[str, Transition]] = field(default_factory=list)


async def _insert_new(conn: AsyncConnection, touchpoints: Sequence[Touchpoint]) -> set[str]:
    result = await conn.execute(_INSERT_TOUCHPOINTS, {
        "event_ids": [t.event_id for t in touchpoints],
        "customers": [t.customer_id for t in touchpoints],
        "events": [t.event for t in touchpoints],
        "channels": [t.channel for t in touchpoints],
        "occurred": [t.occurred_at for t in touchpoints],
        "received": [t.received_at for t in touchpoints],
        "clamped": [t.clamped for t in touchpoints],
        "properties": [json.dumps(t.properties) for t in touchpoints],
    })
    return {row[0] for row in result}


async def _lock_states(
    conn: AsyncConnection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], CustomerState]:
    params = {"journeys": [k[0] for k in keys], "customers": [k[1] for k in keys]}
    await conn.execute(_ENSURE_CUSTOMERS, params)
    result = await conn.execute(_LOCK_CUSTOMERS, params)
    return {
        (row.journey, row.customer_id): CustomerState(
            stage=row.stage, entered_at=row.entered_at, last_event_id=row.last_event_id,
            last_touchpoint_at=row.last_touchpoint_at, rule_counts=dict(row.rule_counts),
            rule_latest={
                rule: (datetime.fromisoformat(at), event_id)
                for rule, (at, event_id) in row.rule_latest.items()
            },
        )
        for row in result
    }


async def _write_states(
    conn: AsyncConnection, states: Mapping[tuple[str, str], CustomerState]
) -> None:
    items = sorted(states.items())
    await conn.execute(_UPDATE_CUSTOMERS, {
        "journeys": [k[0] for k, _ in items],
        "customers": [k[1] for k, _ in items],
        "stages": [s.stage for _, s in items],
        "entered": [s.entered_at for _, s in items],
        "last_ids": [s.last_event_id for _, s in items],
        "last_at": [s.last_touchpoint_at for _, s in items],
        "counts": [json.dumps(s.rule_counts) for _, s in items],
        "rule_latest": [
            json.dumps({r: [at.isoformat(), e] for r, (at, e) in s.rule_latest.items()})
            for _, s in items
        ],
    })


async def _write_transitions(
    conn: AsyncConnection, transitions: Sequence[tuple[str, Transition]]
) -> None:
    if not transitions:
        return
    await conn.execute(_INSERT_TRANSITIONS, {
        "journeys": [j for j, _ in transitions],
        "customers": [t.customer_id for _, t in transitions],
        "froms": [t.from_stage for _, t in transitions],
        "tos": [t.to_stage for _, t in transitions],
        "event_ids": [t.event_id for _, t in transitions],
        "occurred": [t.occurred_at for _, t in transitions],
    })


async def _add_counts(conn: AsyncConnection, deltas: Mapping[tuple[str, str], int]) -> None:
    changed = sorted((key, delta) for key, delta in deltas.items() if delta)
    if not changed:
        return
    await conn.execute(_ADD_COUNTS, {
        "journeys": [k[0] for k, _ in changed],
        "stages": [k[1] for k, _ in changed],
        "deltas": [d for _, d in changed],
    })


async def apply_touchpoints(
    conn: AsyncConnection, engines: Iterable[JourneyEngine], touchpoints: Sequence[Touchpoint]
) -> BatchOutcome:
    """Store new touchpoints and move every affected customer through every journey."""
    outcome = BatchOutcome()
    unique = {t.event_id: t for t in reversed(touchpoints)}  # first occurrence wins
    if not unique:
        return outcome
    ordered = sorted(unique.values(), key=lambda t: t.event_id)
    inserted = await _insert_new(conn, ordered)
    outcome.applied = len(inserted)
    outcome.duplicates = len(touchpoints) - len(inserted)
    if not inserted:
        return outcome

    by_customer: dict[str, list[Touchpoint]] = defaultdict(list)
    for touchpoint in ordered:
        if touchpoint.event_id in inserted:
            by_customer[touchpoint.customer_id].append(touchpoint)
    engines = list(engines)
    keys = sorted((e.journey.name, c) for e in engines for c in by_customer)
    states = await _lock_states(conn, keys)

    new_states: dict[tuple[str, str], CustomerState] = {}
    deltas: dict[tuple[str, str], int] = defaultdict(int)
    for engine in engines:
        name = engine.journey.name
        for customer_id, customer_touchpoints in by_customer.items():
            before = states[(name, customer_id)]
            after, transitions = engine.apply(before, customer_id, customer_touchpoints)
            new_states[(name, customer_id)] = after
            outcome.transitions.extend((name, t) for t in transitions)
            if before.stage != after.stage:
                if before.stage is not None:
                    deltas[(name, before.stage)] -= 1
                if after.stage is not None:
                    deltas[(name, after.stage)] += 1
    await _write_states(conn, new_states)
    await _write_transitions(conn, outcome.transitions)
    await _add_counts(conn, deltas)
    return outcome


async def store_offsets(
    conn: AsyncConnection, group_id: str, cluster_id: str, offsets: Mapping[tuple[str, int], int]
) -> None:
    """Record the next offset to read per partition, in the batch's transaction."""
    items = sorted(offsets.items())
    await conn.execute(_STORE_OFFSETS, {
        "group_id": group_id, "cluster_id": cluster_id,
        "topics": [k[0] for k, _ in items], "partitions": [k[1] for k, _ in items],
        "offsets": [o for _, o in items],
    })


async def read_offsets(
    conn: AsyncConnection, group_id: str, cluster_id: str, topics: Sequence[str]
) -> dict[tuple[str, int], int]:
    result = await conn.execute(
        _READ_OFFSETS, {"group_id": group_id, "cluster_id": cluster_id, "topics": list(topics)}
    )
    return {(row.topic, row.partition): row.next_offset for row in result}
