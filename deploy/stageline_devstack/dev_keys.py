"""Fresh development keys for `make run`, named "dev", printed in the banner and nowhere else.

Only hashes are stored, so keys from an earlier run cannot be shown again: each start revokes the
live keys named "dev" and makes a new write, read and admin key.
"""

import asyncio

from stageline_shared.database import make_engine
from stageline_shared.keys import KINDS, create_key, list_keys, revoke_key

DEV = "dev"


async def _replace(database_url: str) -> dict[str, str]:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            for row in await list_keys(conn):
                if row["name"] == DEV and row["revoked_at"] is None:
                    await revoke_key(conn, row["id"])
            return {kind: (await create_key(conn, kind, source=DEV if kind == "write" else None,
                                            name=DEV))[1]
                    for kind in KINDS}
    finally:
        await engine.dispose()


def fresh_dev_keys(database_url: str) -> dict[str, str]:
    """Revoke the previous run's dev keys; return kind → secret of new ones."""
    return asyncio.run(_replace(database_url))
