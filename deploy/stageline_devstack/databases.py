"""Creating databases on a server (a fresh one per test, the `stageline` one for `make run`)."""

import asyncio
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from stageline_shared.database import async_url


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def _create(url: str, database: str, template: str | None) -> None:
    plain = async_url(url).replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(with_database(plain, "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            suffix = f' TEMPLATE "{template}"' if template else ""
            await conn.execute(f'CREATE DATABASE "{database}"{suffix}')
    finally:
        await conn.close()


def ensure_database(url: str, database: str, template: str | None = None) -> str:
    """Create `database` on the server of `url` if missing; return its URL."""
    asyncio.run(_create(url, database, template))
    return with_database(url, database)


async def drop_database(url: str, database: str) -> None:
    plain = async_url(url).replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(with_database(plain, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()
