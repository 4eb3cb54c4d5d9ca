"""Identity rows in Postgres: which customer each id belongs to, merges applied, erasures.

Every id seen has a row in `identities` mapping it to its customer (itself until linked). A batch
first locks the rows of all its ids, in id order, so a merge and the events of the ids it merges
serialise instead of racing: whichever commits second sees the other's result. Which merges a
batch makes is decided in merges.py.
"""

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from stageline_shared.raw_connection import Connection, pairs
from stageline_stager.merges import Merge

log = logging.getLogger(__name__)

_LOCK = "SELECT id, customer_id FROM identities WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"
_CREATE = """
    INSERT INTO identities (id, customer_id)
    SELECT i, i FROM unnest($1::text[]) AS t(i) ORDER BY i
    ON CONFLICT (id) DO NOTHING
    RETURNING id
"""


async def lock_identities(raw: Connection, ids: Sequence[str]) -> dict[str, str]:
    """Lock the rows of these ids in id order, creating the missing ones; id → customer.

    `raw` is the asyncpg connection under the batch's transaction (the hot path of every batch).
    Most ids exist, so they are locked first and only the rest inserted (probing every id with
    the insert cost more than the lock). An id another batch created in between is locked after
    its insert waited for that batch; should that ever close a cycle, Postgres reports a
    deadlock and the batch is retried.
    """
    ordered = sorted(set(ids))
    canon: dict[str, str] = pairs(await raw.fetch(_LOCK, ordered))
    missing = [i for i in ordered if i not in canon]
    if missing:
        created = {row[0] for row in await raw.fetch(_CREATE, missing)}
        canon.update((i, i) for i in created)
        raced = [i for i in missing if i not in created]
        if raced:
            canon.update(pairs(await raw.fetch(_LOCK, raced)))
    return canon


async def suppressed_ids(raw: Connection, ids: Sequence[str]) -> set[str]:
    return {row[0] for row in await raw.fetch(
        "SELECT id FROM suppressions WHERE id = ANY($1::text[])", list(ids))}


async def forget_identities(raw: Connection, ids: Iterable[str]) -> None:
    """Drop identity rows this batch created for erased ids."""
    await raw.execute("DELETE FROM identities WHERE id = ANY($1::text[])", sorted(ids))


async def repoint(raw: Connection, merge: Merge) -> None:
    """Move the source customer's ids, touchpoints and transition history to the target."""
    # Lock every id of the source first: an event for one of them that is being applied right
    # now (resolved to the source) commits before we move anything.
    await raw.execute("SELECT id FROM identities WHERE customer_id = $1 ORDER BY id FOR UPDATE",
                      merge.source)
    await raw.execute("""
        UPDATE identities SET customer_id = $2, linked_at = now(), linked_by = $3
        WHERE customer_id = $1
    """, merge.source, merge.target, merge.event_id)
    await raw.execute("UPDATE touchpoints SET customer_id = $2 WHERE customer_id = $1",
                      merge.source, merge.target)
    await raw.execute("UPDATE stage_transitions SET customer_id = $2 WHERE customer_id = $1",
                      merge.source, merge.target)


@dataclass(frozen=True)
class Erased:
    """The customer an erase request removed, every id it had, and the (journey, stage) each of
    its stages was in (for the counters)."""

    customer: str
    ids: list[str]
    left: list[tuple[str, str]]


async def erase(raw: Connection, key: str, event_id: str) -> Erased:
    """Erase the customer `key` belongs to: every id, touchpoint, stage and transition.

    All its ids are suppressed from then on.
    """
    canon = await lock_identities(raw, [key])
    customer = canon[key]
    rows = await raw.fetch("SELECT id FROM identities WHERE customer_id = $1 ORDER BY id FOR UPDATE",
                           customer)
    ids = sorted({row[0] for row in rows} | {key, customer})
    await raw.execute("DELETE FROM touchpoints WHERE customer_id = $1", customer)
    await raw.execute("DELETE FROM stage_transitions WHERE customer_id = $1", customer)
    stages = await raw.fetch(
        "DELETE FROM customer_stages WHERE customer_id = $1 RETURNING journey, stage", customer)
    left = [(row[0], row[1]) for row in stages]
    await raw.execute("DELETE FROM customer_progress WHERE customer_id = $1", customer)
    await forget_identities(raw, ids)
    await raw.execute("""
        INSERT INTO suppressions (id, erase_event_id)
        SELECT i, $2::text FROM unnest($1::text[]) AS t(i)
        ON CONFLICT (id) DO NOTHING
    """, ids, event_id)
    log.info("erased customer (%d ids) for erase event %s", len(ids), event_id)
    return Erased(customer, ids, left)
