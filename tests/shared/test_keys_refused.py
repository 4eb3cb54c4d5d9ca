"""Requests refused for their key (missing, unknown, revoked, wrong kind, over its rate); probes stay open."""

import asyncio
import secrets
from typing import Any

import httpx
import pytest

from stageline_shared.keys import KINDS
from tests.fixtures.keys import EVENT, NO_CACHE, assert_error, basic, bearer, new_key, stored_keys
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.integration


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
