"""API keys made and revoked: by the admin endpoints and the CLI, within the cache bound, by `make run`."""

import asyncio
import os
import sys
import time

import httpx
import pytest

from stageline_devstack.dev_keys import fresh_dev_keys
from stageline_shared.keys import KINDS
from tests.fixtures.keys import EVENT, NO_CACHE, assert_error, bearer, revoke_secret, stored_keys
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.integration


def service_logs(stack: Stack) -> str:
    return "".join(path.read_text(errors="replace") for path in sorted(stack.log_dir.glob("*.log")))


async def test_keys_made_and_revoked_by_an_admin(stack: Stack) -> None:
    ingest = stack.start_ingest(**NO_CACHE)
    api = stack.start_api(**NO_CACHE)
    admin = bearer(stack.keys["admin"])
    async with httpx.AsyncClient(timeout=30) as client:
        made = await client.post(f"{api}/v1/admin/keys", headers=admin,
                                 json={"kind": "write", "source": "web shop", "name": "checkout"})
        assert made.status_code == 201, made.text
        write = made.json()
        assert set(write) == {"id", "kind", "source", "name", "key"}
        assert (write["kind"], write["source"], write["name"]) == ("write", "web shop", "checkout")
        assert write["key"].startswith("sl_write_")
        made = await client.post(f"{api}/v1/admin/keys", headers=admin, json={"kind": "read"})
        assert made.status_code == 201, made.text
        read = made.json()

        accepted = await client.post(f"{ingest}/v1/events", json=EVENT, auth=(write["key"], ""))
        assert accepted.status_code == 202, accepted.text
        journeys = await client.get(f"{api}/v1/journeys", headers=bearer(read["key"]))
        assert journeys.status_code == 200, journeys.text

        listed = await client.get(f"{api}/v1/admin/keys", headers=admin)
        assert listed.status_code == 200, listed.text
        rows = {row["id"]: row for row in listed.json()["keys"]}
        assert rows[write["id"]]["source"] == "web shop" and rows[write["id"]]["revoked_at"] is None
        assert all(set(row) == {"id", "kind", "source", "name", "created_at", "revoked_at"}
                   for row in rows.values())
        assert write["key"] not in listed.text and read["key"] not in listed.text

        for key in (write, read):
            gone = await client.delete(f"{api}/v1/admin/keys/{key['id']}", headers=admin)
            assert gone.status_code == 204, gone.text
            again = await client.delete(f"{api}/v1/admin/keys/{key['id']}", headers=admin)
            assert_error(again, 404, "unknown_key", "revoking twice")
        refused = await client.post(f"{ingest}/v1/events", json=EVENT, auth=(write["key"], ""))
        assert_error(refused, 401, "invalid_key", "ingest with a revoked write key")
        refused = await client.get(f"{api}/v1/journeys", headers=bearer(read["key"]))
        assert_error(refused, 401, "invalid_key", "API with a revoked read key")
        listed = await client.get(f"{api}/v1/admin/keys", headers=admin)
        rows = {row["id"]: row for row in listed.json()["keys"]}
        assert rows[write["id"]]["revoked_at"] is not None and rows[read["id"]]["revoked_at"] is not None
    logs = service_logs(stack)
    for secret in (write["key"], read["key"], *stack.keys.values()):
        assert secret not in logs


async def test_a_revocation_applies_within_the_default_cache_bound(stack: Stack) -> None:
    """With the default STAGELINE_KEY_CACHE_S (5), a revoked key keeps working for at most 5 s on
    ingest and on the API, then is refused."""
    ingest, api = stack.start_ingest(), stack.start_api()
    write, read = stack.keys["write"], stack.keys["read"]
    async with httpx.AsyncClient(timeout=30) as client:
        async def refused() -> tuple[bool, bool]:
            sent = await client.post(f"{ingest}/v1/events", json=EVENT, auth=(write, ""))
            listed = await client.get(f"{api}/v1/journeys", headers=bearer(read))
            return sent.status_code == 401, listed.status_code == 401

        assert await refused() == (False, False)  # both keys now cached
        await revoke_secret(stack.database_url, write)
        await revoke_secret(stack.database_url, read)
        revoked_at = time.monotonic()
        assert await refused() == (False, False), "the cache serves a key for up to 5 s"
        while await refused() != (True, True):
            assert time.monotonic() - revoked_at < 5 + 1.5, "a revocation must apply within 5 s"
            await asyncio.sleep(0.1)
    assert time.monotonic() - revoked_at > 3, "applied too soon: the cache bound was not tested"


async def cli(stack: Stack, *args: str) -> tuple[int, str, str]:
    """Run `python -m stageline_api.cli ARGS` against the test's database."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "stageline_api.cli", *args,
        env={**os.environ, "DATABASE_URL": stack.database_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_cli_creates_lists_and_revokes(stack: Stack) -> None:
    ingest = stack.start_ingest(**NO_CACHE)
    code, out, err = await cli(stack, "keys", "create", "--kind", "write", "--source", "web",
                               "--name", "cli test")
    assert code == 0, err
    fields = dict(line.split(maxsplit=1) for line in out.splitlines())
    key_id, secret = fields["id"], fields["key"]
    assert secret.startswith("sl_write_") and "only this once" in err
    async with httpx.AsyncClient(base_url=ingest, timeout=30) as client:
        accepted = await client.post("/v1/events", json=EVENT, auth=(secret, ""))
        assert accepted.status_code == 202, accepted.text

        code, out, err = await cli(stack, "keys", "list")
        assert code == 0, err
        line = next(line for line in out.splitlines() if line.startswith(key_id))
        assert line.split()[1:4] == ["write", "web", "cli"] and line.rstrip().endswith("-")
        assert secret not in out and "sl_" not in out

        code, out, err = await cli(stack, "keys", "revoke", key_id)
        assert code == 0 and key_id in out, err
        refused = await client.post("/v1/events", json=EVENT, auth=(secret, ""))
        assert_error(refused, 401, "invalid_key", "ingest after `stageline keys revoke`")

    code, _, err = await cli(stack, "keys", "revoke", key_id)
    assert code == 1 and "no live key" in err
    code, _, err = await cli(stack, "keys", "create", "--kind", "write")
    assert code == 2 and "needs a source" in err
    assert len(await stored_keys(stack.database_url)) == len(KINDS) + 1, "the refused create stored nothing"
    assert secret not in service_logs(stack)


def test_make_run_replaces_dev_keys(database_url: str) -> None:
    first = fresh_dev_keys(database_url)
    second = fresh_dev_keys(database_url)
    assert set(first) == set(second) == set(KINDS) and not set(first.values()) & set(second.values())
    rows = [row for row in asyncio.run(stored_keys(database_url)) if row["name"] == "dev"]
    live = [row for row in rows if row["revoked_at"] is None]
    assert len(rows) == 2 * len(KINDS)
    assert sorted(row["kind"] for row in live) == sorted(KINDS)
    assert [row["source"] for row in live if row["kind"] == "write"] == ["dev"]
