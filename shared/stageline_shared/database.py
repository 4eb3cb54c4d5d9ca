"""Engines from DATABASE_URL (plain postgres:// URLs too), and the asyncpg connection under one.

What a failure of either means (unavailable, transient, refused data): postgres_errors.py.
"""

import os
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


def async_url(url: str) -> str:
    """Normalise a Postgres URL to the asyncpg driver SQLAlchemy needs."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got {url.split(':', 1)[0]}://…")


# asyncpg waits 60 s for a connection by default: a request would hang that long on a
# database behind a dead network path instead of answering 503.
CONNECT_TIMEOUT_S = 5.0


def make_engine(
    url: str, pool_size: int = 5, server_settings: dict[str, str] | None = None,
    application_name: str | None = None,
) -> AsyncEngine:
    """A pooled engine; `server_settings` are Postgres settings for every session it opens, and
    `application_name` names its sessions in pg_stat_activity (with this process's id)."""
    settings = dict(server_settings or {})
    if application_name:
        settings["application_name"] = f"{application_name}[{os.getpid()}]"
    return create_async_engine(
        async_url(url), pool_size=pool_size, pool_pre_ping=True,
        connect_args={"server_settings": settings, "timeout": CONNECT_TIMEOUT_S},
    )


async def driver_connection(conn: AsyncConnection) -> Any:
    """The asyncpg connection under a SQLAlchemy one, inside its transaction, for COPY.

    SQLAlchemy begins the asyncpg transaction lazily, with its first statement: until one has
    run, every statement on the raw connection would commit on its own.
    """
    raw: Any = (await conn.get_raw_connection()).driver_connection
    if not raw.is_in_transaction():
        await conn.execute(text("SELECT 1"))
    return raw

