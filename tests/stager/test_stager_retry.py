"""Transient Postgres errors raised on the stager's raw asyncpg connection are retried."""

import asyncio

import asyncpg
import pytest

from stageline_shared.database import make_engine
from stageline_stager.consumer import StagerLoop
from stageline_stager.settings import StagerSettings
from tests.fixtures.stack import plain_url

pytestmark = pytest.mark.integration


async def _deadlock(url: str) -> None:
    """Two transactions lock two rows in opposite orders; raise the error Postgres gives one."""
    a, b = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        await a.execute("INSERT INTO identities (id, customer_id) VALUES ('d1', 'd1'), ('d2', 'd2')")
        for conn, own in ((a, "d1"), (b, "d2")):
            await conn.execute("BEGIN")
            await conn.execute("SELECT 1 FROM identities WHERE id = $1 FOR UPDATE", own)
        outcomes = await asyncio.gather(
            a.execute("SELECT 1 FROM identities WHERE id = 'd2' FOR UPDATE"),
            b.execute("SELECT 1 FROM identities WHERE id = 'd1' FOR UPDATE"),
            return_exceptions=True,
        )
        [error] = [o for o in outcomes if isinstance(o, BaseException)]
        raise error
    finally:
        await a.close()
        await b.close()


async def test_a_deadlock_on_the_raw_connection_is_retried_not_fatal(database_url: str) -> None:
    db = make_engine(database_url)
    loop = StagerLoop(StagerSettings(database_url=database_url, db_retry_s=0.01), db, [], "cluster")
    attempts: list[str] = []

    async def attempt() -> None:
        attempts.append("try")
        if len(attempts) == 1:
            await _deadlock(plain_url(database_url))

    try:
        assert await loop._retry("database", attempt)
    finally:
        await loop.consumer.stop()  # never started, but closed, so nothing is left unclosed
        await loop.dead_letters.stop()
        await db.dispose()
    assert len(attempts) == 2
