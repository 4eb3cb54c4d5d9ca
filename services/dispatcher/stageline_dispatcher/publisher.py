"""Publishes the feed to Kafka (the `stage-changes` topic), keyed by customer, in position order.

At least once: positions are sent, acknowledged by the broker (acks=all), then recorded as
published; a dispatcher that dies in between sends them again on its next turn, so consumers
deduplicate by `position` (every record carries it). One dispatcher publishes at a time: the
turn is the row lock on feed_published, skipped by the others while held.
"""

import logging

import orjson
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from stageline_shared import feed
from stageline_shared.raw_connection import connection

log = logging.getLogger(__name__)

_TURN = "SELECT position FROM feed_published FOR UPDATE SKIP LOCKED"
_NEXT = f"""
    SELECT {", ".join(feed.COLUMNS)} FROM stage_changes
    WHERE position > $1 AND position <= (SELECT position FROM feed_head)
    ORDER BY position LIMIT $2
"""


async def publish_once(db: AsyncEngine, producer: AIOKafkaProducer, topic: str, limit: int) -> int:
    """Send the next unpublished changes (up to `limit`) and wait for the broker; how many."""
    async with db.begin() as conn:
        raw = await connection(conn)
        published = await raw.fetchval(_TURN)
        if published is None:  # another dispatcher's turn
            return 0
        rows = await raw.fetch(_NEXT, published, limit)
        if not rows:
            return 0
        sent = [await producer.send(topic, orjson.dumps(feed.item(row)),
                                    key=row["customer_id"].encode()) for row in rows]
        for future in sent:
            await future
        await raw.execute("UPDATE feed_published SET position = $1", rows[-1]["position"])
    return len(rows)
