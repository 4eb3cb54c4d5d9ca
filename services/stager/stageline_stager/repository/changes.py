"""The outbox of the change feed: every stage change, merge and erasure a batch makes, written in
the batch's own transaction, so a change exists exactly when its effects do.

Rows are written without a position; the relay (stageline_dispatcher.relay) gives each its place
in the feed after the batch commits. Rows go in the batch's order (merges first, as they are
applied first, then the transitions in the order stage_transitions gets them), so a customer's
changes keep the order of its transitions.
"""

from collections.abc import Sequence
from datetime import datetime

from stageline_shared.raw_connection import Connection
from stageline_stager.merges import Merge
from stageline_stager.plan import JourneyTransition

_COLUMNS = ("kind", "journey", "customer_id", "from_stage", "to_stage", "merged_id", "event_id",
            "occurred_at")


async def write_changes(raw: Connection, merges: Sequence[Merge],
                        transitions: Sequence[JourneyTransition]) -> None:
    """Add the batch's merges and stage transitions to the outbox, in that order."""
    records: list[tuple[object, ...]] = [
        ("merge", None, m.target, None, None, m.source, m.event_id, m.at) for m in merges]
    records += [("stage", journey, t.customer_id, t.from_stage, t.to_stage, None, t.event_id,
                 t.occurred_at) for journey, t in transitions]
    if records:
        await raw.copy_records_to_table("stage_changes", columns=_COLUMNS, records=records)


async def write_erasure(raw: Connection, customer: str, ids: Sequence[str], event_id: str,
                        at: datetime) -> None:
    """Drop every earlier change that names one of the erased ids (their webhook deliveries go
    with them), then record the erasure itself: the customer's id and nothing else about it."""
    await raw.execute("DELETE FROM stage_changes WHERE customer_id = ANY($1::text[])", list(ids))
    await raw.execute("DELETE FROM stage_changes WHERE merged_id = ANY($1::text[])", list(ids))
    await raw.copy_records_to_table("stage_changes", columns=_COLUMNS, records=[
        ("erase", None, customer, None, None, None, event_id, at)])
