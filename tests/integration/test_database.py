"""The asyncpg connection under a SQLAlchemy one shares its transaction."""

import pytest
from sqlalchemy import text

from stageline_shared.database import driver_connection, make_engine

pytestmark = pytest.mark.integration


async def test_statements_on_the_driver_connection_roll_back_with_the_transaction(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with pytest.raises(RuntimeError):
            async with engine.begin() as conn:
                raw = await driver_connection(conn)  # before any statement through SQLAlchemy
                await raw.execute("INSERT INTO suppressions (id, erase_event_id) VALUES ('rolled-back', 'e')")
                raise RuntimeError("abort the batch")
        async with engine.connect() as conn:
            left = await conn.scalar(text("SELECT count(*) FROM suppressions WHERE id = 'rolled-back'"))
        assert left == 0
    finally:
        await engine.dispose()
