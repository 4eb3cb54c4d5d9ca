"""The asyncpg connection under a SQLAlchemy one shares its transaction; the embedded server's
settings."""

import asyncio
import shutil
import tempfile
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text

from stageline_devstack.postgres import EmbeddedPostgres, server_settings
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


def test_the_embedded_server_runs_with_its_settings_and_keeps_them_across_restarts() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="stageline-pg-settings-")) / "data"
    try:
        for _ in range(2):  # a new data directory (restarted once to apply), then an existing one
            server = EmbeddedPostgres(data_dir).start()
            try:
                shown = asyncio.run(_settings(server.url(), list(server_settings())))
            finally:
                server.stop()
            assert shown == server_settings()
    finally:
        shutil.rmtree(data_dir.parent, ignore_errors=True)


async def _settings(url: str, names: list[str]) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        return {name: await conn.fetchval(f"SHOW {name}") for name in names}
    finally:
        await conn.close()
