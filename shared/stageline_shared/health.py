"""Readiness checks shared by the services: can we reach the broker and the database?"""

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

CHECK_TIMEOUT_S = 2.0


async def broker_reachable(bootstrap_servers: str) -> bool:
    """True when any bootstrap server accepts a TCP connection."""
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host or "127.0.0.1", int(port)), CHECK_TIMEOUT_S
            )
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        await writer.wait_closed()
        return True
    return False


async def database_reachable(engine: AsyncEngine) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means not ready
        return False
    return True


async def readiness(
    bootstrap_servers: str, engine: AsyncEngine, needs_database: bool = True
) -> tuple[bool, dict[str, bool]]:
    """Ready or not, and each check; `needs_database=False` for a service that serves through a
    database outage (ingest), which reports the database without depending on it."""
    broker, database = await asyncio.gather(
        broker_reachable(bootstrap_servers), database_reachable(engine)
    )
    return broker and (database or not needs_database), {"broker": broker, "database": database}
