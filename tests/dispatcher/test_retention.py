"""Finished deliveries are deleted after STAGELINE_WEBHOOK_RETENTION_DAYS; pending ones never."""

import asyncpg
import pytest

from tests.fixtures.feed import fetch
from tests.fixtures.polling import wait_for
from tests.fixtures.stack import Stack, plain_url

pytestmark = pytest.mark.integration


async def test_old_finished_deliveries_go_and_the_rest_stay(stack: Stack) -> None:
    conn = await asyncpg.connect(plain_url(stack.database_url))
    try:
        await conn.execute("INSERT INTO webhook_endpoints (id, url, secret, disabled_at) VALUES "
                           "('wh_00000000000a', 'http://127.0.0.1:9/', 'whsec_AAAA', now())")
        await conn.execute("""
            INSERT INTO stage_changes (position, kind, journey, customer_id, to_stage, event_id, occurred_at)
            SELECT g, 'stage', 'shop', 'c-' || g, 'interest', 'e-' || g, now() FROM generate_series(1, 4) g
        """)
        await conn.execute("UPDATE feed_head SET position = 4")
        await conn.execute("""
            INSERT INTO webhook_deliveries (endpoint_id, change_id, position, customer_id, status, finished_at)
            SELECT 'wh_00000000000a', id, position, customer_id, s, f
            FROM stage_changes JOIN (VALUES
                (1, 'delivered', now() - interval '8 days'), (2, 'failed', now() - interval '8 days'),
                (3, 'delivered', now() - interval '6 days'), (4, 'pending', NULL::timestamptz)
            ) AS v(p, s, f) ON v.p = position
        """)
    finally:
        await conn.close()
    stack.start_dispatcher(STAGELINE_PUBLISH_CHANGES="false", STAGELINE_WEBHOOK_RETENTION_DAYS="7")

    async def pruned() -> bool:
        rows = await fetch(stack.database_url, "SELECT position FROM webhook_deliveries ORDER BY position")
        return [r[0] for r in rows] == [3, 4]
    await wait_for(pruned, 30, "the deliveries finished 8 days ago to be deleted")
