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
from stageline_stager.engine import CustomerState, JourneyEngine, Transition, merge_states
from stageline_stager.identity import (
    Conflict,
    Merge,
    erase,
    event_ids,
    forget_identities,
    lock_identities,
    plan_links,
    repoint,
    suppressed_ids,
)

_INSERT_TOUCHPOINTS = text("""
    INSERT INTO touchpoints
        (event_id, customer_id, event, channel, occurred_at, received_at, clamped, properties,
         type, anonymous_id, user_id, context, source)
    SELECT e, c, n, ch, o, r, cl, CAST(p AS jsonb), ty, a, u, CAST(cx AS jsonb), so
    FROM unnest(CAST(:event_ids AS text[]), CAST(:customers AS text[]), CAST(:events AS text[]),
                CAST(:channels AS text[]), CAST(:occurred AS timestamptz[]),
                CAST(:received AS timestamptz[]), CAST(:clamped AS boolean[]),
                CAST(:properties AS text[]), CAST(:types AS text[]), CAST(:anonymous_ids AS text[]),
                CAST(:user_ids AS text[]), CAST(:contexts AS text[]), CAST(:sources AS text[]))
         AS t(e, c, n, ch, o, r, cl, p, ty, a, u, cx, so)
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
    suppressed: int = 0
    erased: int = 0
    merges: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    transitions: list[tuple[str, Transition]] = field(default_factory=list)


async def _insert_new(
    conn: AsyncConnection, touchpoints: Sequence[Touchpoint], canon: Mapping[str, str]
) -> set[str]:
    """Insert under each event's current customer; returns the ids that were new."""
    result = await conn.execute(_INSERT_TOUCHPOINTS, {
        "event_ids": [t.event_id for t in touchpoints],
        "customers": [canon[t.customer_id] for t in touchpoints],
        "events": [t.event for t in touchpoints],
        "channels": [t.channel for t in touchpoints],
        "occurred": [t.occurred_at for t in touchpoints],
        "received": [t.received_at for t in touchpoints],
        "clamped": [t.clamped for t in touchpoints],
        "properties": [json.dumps(t.properties) for t in touchpoints],
        "types": [t.type for t in touchpoints],
        "anonymous_ids": [t.anonymous_id for t in touchpoints],
        "user_ids": [t.user_id for t in touchpoints],
        "contexts": [json.dumps(t.context) for t in touchpoints],
        "sources": [t.source for t in touchpoints],
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


_DELETE_MERGED = text("""
    DELETE FROM customer_stages
    WHERE (journey, customer_id) IN (
        SELECT j, c FROM unnest(CAST(:journeys AS text[]), CAST(:customers AS text[])) AS t(j, c))
""")


def _move(deltas: dict[tuple[str, str], int], journey: str, before: str | None, after: str | None) -> None:
    if before != after:
        if before is not None:
            deltas[(journey, before)] -= 1
        if after is not None:
            deltas[(journey, after)] += 1


async def apply_touchpoints(
    conn: AsyncConnection, engines: Iterable[JourneyEngine], touchpoints: Sequence[Touchpoint]
) -> BatchOutcome:
    """Store new touchpoints, stitch identities, move customers through every journey, erase.

    Order inside the transaction: lock the batch's identities (id order), drop events of erased
    ids, plan and apply merges, insert touchpoints (duplicates skipped), then lock the affected
    customers' stage rows ((journey, customer) order) and write states, transitions and counts.
    Erase requests run last, so an erase removes what its own batch stored too.
    """
    engines = list(engines)
    outcome = BatchOutcome()
    unique = list({t.event_id: t for t in reversed(touchpoints)}.values())  # first one wins
    outcome.duplicates = len(touchpoints) - len(unique)
    erasures = sorted((t for t in unique if t.type == "erase"), key=lambda t: t.event_id)
    events = sorted((t for t in unique if t.type != "erase"), key=lambda t: t.event_id)
    deltas: dict[tuple[str, str], int] = defaultdict(int)

    if events:
        canon = await lock_identities(conn, [i for t in events for i in event_ids(t)])
        # Read after the locks: an erase committed while we waited is seen here.
        hidden = await suppressed_ids(conn, list(canon))
        if hidden:
            kept = [t for t in events if not hidden.intersection(event_ids(t))]
            outcome.suppressed = len(events) - len(kept)
            events = kept
            await forget_identities(conn, hidden)
        merges, conflicts = plan_links(events, canon)
        for merge in merges:
            await repoint(conn, merge)
        inserted = await _insert_new(conn, events, canon) if events else set()
        outcome.applied = len(inserted)
        outcome.duplicates += len(events) - len(inserted)
        outcome.merges = len(merges)
        outcome.conflicts = [c for c in conflicts if c.event_id in inserted]
        await _apply_stages(conn, engines, [t for t in events if t.event_id in inserted],
                            canon, merges, outcome, deltas)

    for request in erasures:
        left = await erase(conn, request.customer_id, request.event_id)
        outcome.erased += 1
        for journey, stage in left:
            deltas[(journey, stage)] -= 1
    await _add_counts(conn, deltas)
    return outcome


async def _apply_stages(
    conn: AsyncConnection,
    engines: list[JourneyEngine],
    new: list[Touchpoint],
    canon: Mapping[str, str],
    merges: list[Merge],
    outcome: BatchOutcome,
    deltas: dict[tuple[str, str], int],
) -> None:
    by_customer: dict[str, list[Touchpoint]] = defaultdict(list)
    for touchpoint in new:
        by_customer[canon[touchpoint.customer_id]].append(touchpoint)
    customers = set(by_customer) | {m.source for m in merges} | {m.target for m in merges}
    if not customers:
        return
    keys = sorted((e.journey.name, c) for e in engines for c in customers)
    states = await _lock_states(conn, keys)
    gone: list[tuple[str, str]] = []
    for engine in engines:
        name = engine.journey.name
        for merge in merges:
            source = states.pop((name, merge.source), CustomerState())
            target = states.get((name, merge.target), CustomerState())
            combined = merge_states(engine, target, source, merge.at)
            _move(deltas, name, source.stage, None)
            _move(deltas, name, target.stage, combined.stage)
            if combined.stage is not None and combined.stage != target.stage:
                outcome.transitions.append((name, Transition(
                    merge.target, target.stage, combined.stage, merge.event_id, merge.at)))
            states[(name, merge.target)] = combined
            gone.append((name, merge.source))
        for customer_id, customer_touchpoints in by_customer.items():
            before = states.get((name, customer_id), CustomerState())
            after, transitions = engine.apply(before, customer_id, customer_touchpoints)
            states[(name, customer_id)] = after
            outcome.transitions.extend((name, t) for t in transitions)
            _move(deltas, name, before.stage, after.stage)
    if gone:
        await conn.execute(_DELETE_MERGED, {"journeys": [g[0] for g in gone],
                                            "customers": [g[1] for g in gone]})
    await _write_states(conn, states)
    await _write_transitions(conn, outcome.transitions)


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
