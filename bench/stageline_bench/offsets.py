"""How far the stager got: the sum of its stored next offsets for a topic (consumer_offsets).

The broker's ListOffsets is not relied on (Tansu's is unreliable); each record is one offset, so
the stored offsets count the records applied.
"""

import asyncio
import time

import asyncpg

from stageline_bench.progress import log


async def applied(conn: asyncpg.Connection, topic: str) -> int:
    value = await conn.fetchval(
        "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE topic = $1", topic
    )
    return int(value)


async def watch_applied(
    database_url: str, topic: str, target: int, what: str, stall_s: float = 60.0,
    interval_s: float = 0.25,
) -> list[tuple[float, int]]:
    """Poll until `target` records are applied; returns (monotonic time, applied) samples.

    Fails when nothing moved for `stall_s` seconds: the pipeline stopped working.
    """
    conn = await asyncpg.connect(database_url)
    try:
        samples: list[tuple[float, int]] = []
        moved = reported = time.monotonic()
        while True:
            now, count = time.monotonic(), await applied(conn, topic)
            if samples and count != samples[-1][1]:
                moved = now
            samples.append((now, count))
            if count >= target:
                return samples
            if now - moved > stall_s:
                raise RuntimeError(f"{what}: stuck at {count} of {target} records for {stall_s:.0f}s")
            if now - reported >= 10:
                reported = now
                log.info("  %s: %d of %d records applied", what, count, target)
            await asyncio.sleep(interval_s)
    finally:
        await conn.close()


async def settle(database_url: str, topic: str, quiet_s: float = 1.0) -> tuple[float, int]:
    """Wait until the applied count stops changing for `quiet_s`; (time of last change, count)."""
    conn = await asyncpg.connect(database_url)
    try:
        last_change, count = time.monotonic(), await applied(conn, topic)
        while time.monotonic() - last_change < quiet_s:
            await asyncio.sleep(0.05)
            now = await applied(conn, topic)
            if now != count:
                last_change, count = time.monotonic(), now
        return last_change, count
    finally:
        await conn.close()
