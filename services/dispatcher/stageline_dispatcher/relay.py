"""The relay: gives the outbox's new changes their positions in the feed and fans them out to the
webhook endpoints that want them, in one transaction.

Why positions, not the outbox's identity column: ids are drawn when a stager inserts, but its
transaction may commit after one holding a larger id, so a reader continuing after the largest
id it has seen could skip the smaller one for good. Here every relay transaction first locks the
single row of feed_head; relays (one per dispatcher) run one at a time, and each gives the changes
it sees the positions right after the last one committed. Positions therefore become visible in
order, with no holes a later commit could fill: reading `position > cursor` never skips.
Within what one relay sees, id order keeps each customer's changes in the order they were made
(a customer's batches commit one after another, under its identity locks).
"""

import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from stageline_shared import feed
from stageline_shared.raw_connection import connection

log = logging.getLogger(__name__)

_HEAD = "SELECT position FROM feed_head FOR UPDATE"

_POSITION = """
    WITH next AS (
        SELECT id, $1::bigint + row_number() OVER (ORDER BY id) AS position
        FROM (SELECT id FROM stage_changes WHERE position IS NULL ORDER BY id LIMIT $2) AS waiting
    )
    UPDATE stage_changes c SET position = next.position FROM next WHERE c.id = next.id
    RETURNING c.position
"""

_FAN_OUT = f"""
    INSERT INTO webhook_deliveries (endpoint_id, change_id, position, customer_id)
    SELECT e.id, c.id, c.position, c.customer_id
    FROM stage_changes c
    JOIN webhook_endpoints e ON e.disabled_at IS NULL AND {feed.ENDPOINT_TAKES}
    WHERE c.position > $1 AND c.position <= $2
    ORDER BY c.position, e.id
"""


_WAITING = "SELECT EXISTS (SELECT 1 FROM stage_changes WHERE position IS NULL)"


async def relay_once(db: AsyncEngine, limit: int) -> int:
    """Position up to `limit` waiting changes and create their deliveries; how many."""
    async with db.begin() as conn:
        raw = await connection(conn)
        if not await raw.fetchval(_WAITING):  # idle: no lock taken, nothing written
            return 0
        head = await raw.fetchval(_HEAD)
        rows = await raw.fetch(_POSITION, head, limit)
        if not rows:
            return 0
        new_head = head + len(rows)
        await raw.execute("UPDATE feed_head SET position = $1", new_head)
        await raw.execute(_FAN_OUT, head, new_head)
    return len(rows)
