"""Applying one polled batch inside the caller's transaction: read, plan, write.

The stores (repository/) read what the batch needs and write what the planners (plan.py,
merges.py, engine.py) decide, a statement or two per table. Replays are safe: only touchpoints
whose event_id is not stored yet are inserted, and only the ones actually inserted go on to
change stages, so a redelivered record changes nothing twice.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection

from stageline_shared.contract.record import TouchpointFields
from stageline_shared.raw_connection import connection
from stageline_stager.engine import JourneyEngine, Transition
from stageline_stager.merges import Conflict, event_ids, plan_links
from stageline_stager.plan import (
    CountDeltas,
    by_customer,
    customers_to_lock,
    plan_stages,
    split_batch,
    without_suppressed,
)
from stageline_stager.repository import changes, progress, touchpoints
from stageline_stager.repository.identities import (
    erase,
    forget_identities,
    lock_identities,
    repoint,
    suppressed_ids,
)

# One round trip creates every staging table of the batch.
_STAGING = touchpoints.STAGING + progress.STAGING


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


async def apply_touchpoints(
    conn: AsyncConnection, engines: Iterable[JourneyEngine], batch: Sequence[TouchpointFields]
) -> BatchOutcome:
    """Store new touchpoints, stitch identities, move customers through every journey, erase.

    Order inside the transaction: lock the batch's identities (id order), drop events of erased
    ids, plan and apply merges, insert touchpoints (duplicates skipped), then lock the affected
    customers' progress rows (customer order) and write progress, changed stages, transitions,
    the outbox of the change feed and counts.
    Erase requests run last, so an erase removes what its own batch stored too.
    """
    engines = list(engines)
    intake = split_batch(batch)
    outcome = BatchOutcome(duplicates=intake.duplicates)
    deltas = CountDeltas()
    events = intake.events

    raw = await connection(conn)
    await raw.execute(_STAGING)
    if events:
        canon = await lock_identities(raw, [i for t in events for i in event_ids(t)])
        # Read after the locks: an erase committed while we waited is seen here.
        hidden = await suppressed_ids(raw, list(canon))
        if hidden:
            kept = without_suppressed(events, hidden)
            outcome.suppressed = len(events) - len(kept)
            events = kept
            await forget_identities(raw, hidden)
        merges, conflicts = plan_links(events, canon)
        for merge in merges:
            await repoint(raw, merge)
        inserted = await touchpoints.insert_new(raw, events, canon) if events else set()
        outcome.applied = len(inserted)
        outcome.duplicates += len(events) - len(inserted)
        outcome.merges = len(merges)
        outcome.conflicts = [c for c in conflicts if c.event_id in inserted]
        grouped = by_customer((t for t in events if t.event_id in inserted), canon)
        customers = customers_to_lock(grouped, merges)
        if customers:
            plan = plan_stages(engines, grouped, merges, await progress.lock_progress(raw, customers))
            await progress.forget_customers(raw, plan.forgotten)
            await progress.write_progress(raw, plan.progress, plan.moved)
            await progress.write_transitions(raw, plan.transitions)
            await changes.write_changes(raw, merges, plan.transitions)
            outcome.transitions = plan.transitions
            deltas.update(plan.deltas)

    for request in intake.erasures:
        erased = await erase(raw, request.customer_id, request.event_id)
        await changes.write_erasure(raw, erased.customer, erased.ids, request.event_id,
                                    request.occurred_at)
        outcome.erased += 1
        for journey, stage in erased.left:
            deltas.move(journey, stage, None)
    await progress.add_counts(raw, deltas.changed())
    return outcome
