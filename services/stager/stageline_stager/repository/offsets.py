"""Consumer offsets in Postgres: the next record to read per partition, stored with the effects
of the records before it, in the same transaction."""

from collections.abc import Mapping, Sequence

from stageline_shared.raw_connection import Connection

# GREATEST: a batch finishing late on a stager that already lost the partition must not move
# the offset back under the new owner.
_STORE_OFFSETS = """
    INSERT INTO consumer_offsets (group_id, cluster_id, topic, partition, next_offset)
    SELECT $1::text, $2::text, t, p, o
    FROM unnest($3::text[], $4::int[], $5::bigint[]) AS u(t, p, o)
    ORDER BY t, p
    ON CONFLICT (group_id, cluster_id, topic, partition) DO UPDATE
    SET next_offset = GREATEST(consumer_offsets.next_offset, excluded.next_offset),
        updated_at = now()
"""

# The offsets before this batch's, locked until it commits (another stager's batch on the same
# partition, during a rebalance, then waits for this one).
_LOCK_OFFSETS = """
    SELECT topic, partition, next_offset FROM consumer_offsets
    WHERE group_id = $1 AND cluster_id = $2
      AND (topic, partition) IN (SELECT * FROM unnest($3::text[], $4::int[]))
    ORDER BY topic, partition
    FOR UPDATE
"""

_READ_OFFSETS = """
    SELECT topic, partition, next_offset FROM consumer_offsets
    WHERE group_id = $1 AND cluster_id = $2 AND topic = ANY($3::text[])
"""


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
    raw: Connection, group_id: str, cluster_id: str, offsets: Mapping[tuple[str, int], int],
    expected: Mapping[tuple[str, int], int] | None = None,
) -> None:
    """Record the next offset to read per partition, in the batch's transaction.

    `expected`: per partition, the offset this stager last read or stored; OffsetsWentBack when
    the stored one is behind it (or gone), so nothing past unapplied records is ever stored. A
    stored offset ahead of it (another owner moved on during a rebalance) is kept: GREATEST.
    """
    items = sorted(offsets.items())
    topics, partitions = [k[0] for k, _ in items], [k[1] for k, _ in items]
    if expected:
        stored = {(row[0], row[1]): row[2] for row in await raw.fetch(
            _LOCK_OFFSETS, group_id, cluster_id, topics, partitions)}
        behind = {key: (stored.get(key), offset) for key, offset in expected.items()
                  if key in offsets and stored.get(key, -1) < offset}
        if behind:
            raise OffsetsWentBack(behind)
    await raw.execute(_STORE_OFFSETS, group_id, cluster_id, topics, partitions, [o for _, o in items])


async def read_offsets(
    raw: Connection, group_id: str, cluster_id: str, topics: Sequence[str]
) -> dict[tuple[str, int], int]:
    rows = await raw.fetch(_READ_OFFSETS, group_id, cluster_id, list(topics))
    return {(row[0], row[1]): row[2] for row in rows}
