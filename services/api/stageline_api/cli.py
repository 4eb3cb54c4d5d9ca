"""`stageline`: manage API keys straight in the database (DATABASE_URL).

    stageline keys create --kind write --source "web shop" [--name NAME]
    stageline keys list
    stageline keys revoke KEY_ID

The secret of a new key is printed once, on stdout; only its SHA-256 is stored and it is never
logged. Exit codes: 0 done, 1 no such live key or database error, 2 usage error.
"""

import argparse
import asyncio
import sys
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from stageline_shared.database import make_engine
from stageline_shared.keys import KINDS, check_new_key, create_key, list_keys, revoke_key
from stageline_shared.settings import CommonSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stageline", description="Stageline administration.")
    groups = parser.add_subparsers(dest="group", required=True)
    keys = groups.add_parser("keys", help="create, list and revoke API keys")
    commands = keys.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print its secret (once)")
    create.add_argument("--kind", choices=KINDS, required=True,
                        help="write: ingest; read: the read API; admin: everything")
    create.add_argument("--source", help="where a write key's events come from (required for write)")
    create.add_argument("--name", help="a label to tell keys apart")
    commands.add_parser("list", help="every key without its secret (revoked ones too)")
    revoke = commands.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    return parser


async def _create(engine: AsyncEngine, args: argparse.Namespace) -> int:
    async with engine.begin() as conn:
        key, secret = await create_key(conn, args.kind, args.source, args.name)
    print(f"id   {key.id}")
    print(f"key  {secret}")
    print("The key is shown only this once: store it now.", file=sys.stderr)
    return 0


async def _list(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        rows = await list_keys(conn)
    print(f"{'ID':<17} {'KIND':<6} {'SOURCE':<20} {'NAME':<20} {'CREATED':<20} REVOKED")
    for row in rows:
        revoked = row["revoked_at"].strftime("%Y-%m-%d %H:%M:%S") if row["revoked_at"] else "-"
        print(f"{row['id']:<17} {row['kind']:<6} {row['source'] or '-':<20} {row['name'] or '-':<20} "
              f"{row['created_at']:%Y-%m-%d %H:%M:%S}  {revoked}")
    return 0


async def _revoke(engine: AsyncEngine, key_id: str) -> int:
    async with engine.begin() as conn:
        revoked = await revoke_key(conn, key_id)
    if not revoked:
        print(f"stageline: no live key has id {key_id!r}", file=sys.stderr)
        return 1
    print(f"revoked {key_id} (services notice within STAGELINE_KEY_CACHE_S seconds)")
    return 0


async def _run(args: argparse.Namespace, database_url: str) -> int:
    engine = make_engine(database_url, pool_size=1)
    try:
        if args.command == "create":
            return await _create(engine, args)
        if args.command == "list":
            return await _list(engine)
        return await _revoke(engine, args.key_id)
    finally:
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "create":
        try:
            check_new_key(args.kind, args.source, args.name)
        except ValueError as exc:
            parser.error(str(exc))
    try:
        database_url = CommonSettings().database_url
        return asyncio.run(_run(args, database_url))
    except DBAPIError as exc:
        # Only the driver's message: SQLAlchemy's own text would quote the statement's parameters.
        print(f"stageline: database error: {exc.orig}", file=sys.stderr)
    except (OSError, ValueError) as exc:
        print(f"stageline: cannot use DATABASE_URL: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
