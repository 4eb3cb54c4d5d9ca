"""Transient Postgres errors raised on the stager's raw asyncpg connection are retried."""

import asyncio

import asyncpg
import pytest

from stageline_stager.retry import Retrier
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
    retrier = Retrier(asyncio.Event(), delay_s=0.01)
    attempts: list[str] = []

    async def attempt() -> None:
        attempts.append("try")
        if len(attempts) == 1:
            await _deadlock(plain_url(database_url))

    assert await retrier.until_done("database", attempt)
    assert len(attempts) == 2
