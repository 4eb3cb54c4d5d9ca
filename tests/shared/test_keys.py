"""API keys end to end: every endpoint refuses a missing, unknown, revoked or wrong-kind key with
a JSON 401/403; revocation through the admin endpoints and the CLI takes effect; per-key rate
limits. (The Segment routes' keys are tested with those routes.)"""

import asyncio
import base64
import os
import secrets
import sys
import time
from typing import Any

import httpx
import pytest

from stageline_devstack.dev_keys import fresh_dev_keys
from stageline_shared.database import make_engine
from stageline_shared.keys import KINDS, list_keys
from tests.fixtures.keys import new_key, revoke_secret
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.integration

NO_CACHE = {"STAGELINE_KEY_CACHE_S": "0"}  # revocations visible at once
EVENT = {"customer_id": "c-1", "event": "Product Viewed"}


def bearer(secret: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"} if secret else {}


def basic(secret: str | None) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{secret}:".encode()).decode()} if secret else {}


def assert_error(response: httpx.Response, status: int, code: str, what: str) -> None:
    assert response.status_code == status, f"{what}: {response.status_code} {response.text}"
    body = response.json()
    assert set(body) == {"code", "message"} and body["code"] == code, f"{what}: {body}"
    assert body["message"], what


def refusals(stack: Stack, revoked: str, allowed: set[str]) -> list[tuple[str, str | None, int, str]]:
    """(case, secret, status, code): no key, a random one, a revoked one, each wrong kind."""
    cases: list[tuple[str, str | None, int, str]] = [
        ("no key", None, 401, "missing_key"),
        ("random key", f"sl_admin_{secrets.token_urlsafe(32)}", 401, "invalid_key"),
        ("revoked key", revoked, 401, "invalid_key"),
    ]
    cases += [(f"{kind} key", stack.keys[kind], 403, "wrong_key_kind") for kind in KINDS
              if kind not in allowed]
    return cases


async def stored_keys(database_url: str) -> list[dict[str, Any]]:
    """Every row of api_keys (no secrets, no hashes), straight from the database."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            return await list_keys(conn)
    finally:
        await engine.dispose()


def service_logs(stack: Stack) -> str:
    return "".join(path.read_text(errors="replace") for path in sorted(stack.log_dir.glob("*.log")))


async def test_ingest_refuses_bad_keys(stack: Stack) -> None:
    ingest = stack.start_ingest(**NO_CACHE)
    revoked = await new_key(stack.database_url, "write", revoked=True)
    async with httpx.AsyncClient(base_url=ingest, timeout=30) as client:
        for case, secret, status, code in refusals(stack, revoked, {"write"}):
            for scheme, header in (("Basic", basic), ("Bearer", bearer)):
                response = await client.post("/v1/events", json=EVENT, headers=header(secret))
                assert_error(response, status, code, f"POST /v1/events, {case} as {scheme}")
        missing = await client.post("/v1/events", json=EVENT)
        assert "WWW-Authenticate" in missing.headers
        garbled = await client.post("/v1/events", json=EVENT, headers={"Authorization": "Basic %%%"})
        assert_error(garbled, 401, "invalid_key", "Basic credentials that are not base64")
        for scheme, header in (("Basic", basic), ("Bearer", bearer)):
            response = await client.post("/v1/events", json=EVENT, headers=header(stack.write_key))
            assert response.status_code == 202, f"{scheme}: {response.text}"


READS = [
    ("/v1/journeys", 200),
    ("/v1/journeys/shop/stages", 200),
    ("/v1/customers/alice", 404),  # past the key check: nobody has touchpoints yet
    ("/v1/customers/alice/timeline", 404),
]


async def test_read_api_needs_a_read_or_admin_key(stack: Stack) -> None:
    api = stack.start_api(**NO_CACHE)
    revoked = await new_key(stack.database_url, "read", revoked=True)
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        for path, ok_status in READS:
            for case, secret, status, code in refusals(stack, revoked, {"read", "admin"}):
                response = await client.get(path, headers=bearer(secret))
                assert_error(response, status, code, f"GET {path}, {case}")
                if status == 401:
                    assert response.headers["WWW-Authenticate"].startswith("Bearer"), path
            for kind in ("read", "admin"):
                response = await client.get(path, headers=bearer(stack.keys[kind]))
                assert response.status_code == ok_status, f"GET {path} with a {kind} key: {response.text}"
            # The API takes Bearer tokens only; a Basic header carries no key for it.
            response = await client.get(path, headers=basic(stack.keys["read"]))
            assert_error(response, 401, "missing_key", f"GET {path}, read key as Basic")


async def test_probes_and_docs_stay_open(stack: Stack) -> None:
    api = stack.start_api()
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        for path in ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"):
            assert (await client.get(path)).status_code == 200, path
        spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, method in (("/v1/journeys", "get"), ("/v1/customers/{customer_id}/timeline", "get"),
                         ("/v1/admin/keys", "post"), ("/v1/admin/keys/{key_id}", "delete")):
        operation = spec["paths"][path][method]
        assert operation["security"] == [{"HTTPBearer": []}], path
        assert {"401", "403"} <= set(operation["responses"]), path
    assert "security" not in spec["paths"]["/healthz"]["get"]


ADMIN_CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/v1/admin/keys", {"kind": "read", "name": "crm"}),
    ("GET", "/v1/admin/keys", None),
    ("DELETE", "/v1/admin/keys/key_000000000000", None),
]


async def test_admin_endpoints_need_an_admin_key(stack: Stack) -> None:
    api = stack.start_api(**NO_CACHE)
    revoked = await new_key(stack.database_url, "admin", revoked=True)
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        for method, path, body in ADMIN_CALLS:
            for case, secret, status, code in refusals(stack, revoked, {"admin"}):
                response = await client.request(method, path, json=body, headers=bearer(secret))
                assert_error(response, status, code, f"{method} {path}, {case}")
        # The key is checked before the body: no schema hints for strangers.
        assert_error(await client.post("/v1/admin/keys", json={}), 401, "missing_key", "POST {} without key")
        assert len(await stored_keys(stack.database_url)) == len(KINDS) + 1, "refused: nothing created"

        admin = bearer(stack.keys["admin"])
        for body, fragment in (
            ({"kind": "write"}, "needs a source"),
            ({"kind": "write", "source": "  "}, "source must not be blank"),
            ({"kind": "read", "name": "tab\there"}, "control character"),
            ({"kind": "read", "name": "x" * 101}, "name"),
            ({"kind": "root"}, "kind"),
            ({"kind": "read", "secret": "mine"}, "secret"),
        ):
            response = await client.post("/v1/admin/keys", json=body, headers=admin)
            assert_error(response, 422, "invalid_request", f"POST {body}")
            assert fragment in response.json()["message"], response.json()
        response = await client.delete("/v1/admin/keys/key_000000000000", headers=admin)
        assert_error(response, 404, "unknown_key", "DELETE an unknown key")


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


async def test_rate_limit_per_key(stack: Stack) -> None:
    ingest = stack.start_ingest(STAGELINE_RATE_LIMIT_RPS="1", STAGELINE_RATE_LIMIT_BURST="2")
    other = await new_key(stack.database_url, "write")
    async with httpx.AsyncClient(base_url=ingest, timeout=30) as client:
        # Empty batches are refused after the key check, so the burst is spent without waiting
        # on the broker and the third request comes well within a second.
        for _ in range(2):
            response = await client.post("/v1/events", json={"batch": []}, auth=(stack.write_key, ""))
            assert_error(response, 422, "no_valid_events", "within the burst")
        limited = await client.post("/v1/events", json=EVENT, auth=(stack.write_key, ""))
        assert_error(limited, 429, "rate_limited", "third request in a second")
        retry_after = int(limited.headers["Retry-After"])
        assert retry_after >= 1
        response = await client.post("/v1/events", json=EVENT, auth=(other, ""))
        assert response.status_code == 202, "another key has its own bucket"
        await asyncio.sleep(retry_after)
        response = await client.post("/v1/events", json=EVENT, auth=(stack.write_key, ""))
        assert response.status_code == 202, f"after Retry-After: {response.text}"


def test_make_run_replaces_dev_keys(database_url: str) -> None:
    first = fresh_dev_keys(database_url)
    second = fresh_dev_keys(database_url)
    assert set(first) == set(second) == set(KINDS) and not set(first.values()) & set(second.values())
    rows = [row for row in asyncio.run(stored_keys(database_url)) if row["name"] == "dev"]
    live = [row for row in rows if row["revoked_at"] is None]
    assert len(rows) == 2 * len(KINDS)
    assert sorted(row["kind"] for row in live) == sorted(KINDS)
    assert [row["source"] for row in live if row["kind"] == "write"] == ["dev"]


SEGMENT_ROUTES: dict[str, dict[str, Any]] = {
    "/v1/track": {"userId": "u-1", "event": "Product Viewed"},
    "/v1/identify": {"userId": "u-1", "anonymousId": "a-1", "traits": {"plan": "pro"}},
    "/v1/page": {"anonymousId": "a-1", "name": "Pricing"},
    "/v1/screen": {"anonymousId": "a-1", "name": "Home"},
    "/v1/group": {"userId": "u-1", "groupId": "g-1"},
    "/v1/alias": {"userId": "u-1", "previousId": "a-1"},
    "/v1/batch": {"batch": [{"type": "track", "userId": "u-1", "event": "Product Viewed"}]},
}


async def test_segment_routes_refuse_bad_keys(stack: Stack) -> None:
    ingest = stack.start_ingest(**NO_CACHE)
    revoked = await new_key(stack.database_url, "write", revoked=True)
    async with httpx.AsyncClient(base_url=ingest, timeout=30) as client:
        for route, body in SEGMENT_ROUTES.items():
            for case, secret, status, code in refusals(stack, revoked, {"write"}):
                response = await client.post(route, json=body, headers=basic(secret))
                assert_error(response, status, code, f"POST {route}, {case} as Basic")
                if secret:  # the same key as `writeKey` in the body
                    response = await client.post(route, json={**body, "writeKey": secret})
                    assert_error(response, status, code, f"POST {route}, {case} in the body")
            accepted = await client.post(route, json=body, headers=basic(stack.write_key))
            assert accepted.status_code == 200, (route, accepted.text)
