"""The webhook admin API: registration and what it refuses, listing without secrets, deletion,
rotation, and the errors of every route."""

import httpx
import pytest

from tests.fixtures.stack import Stack

pytestmark = pytest.mark.integration


def headers(stack: Stack, kind: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.keys[kind]}"}


async def test_register_list_get_delete(stack: Stack) -> None:
    api = stack.start_api(STAGELINE_WEBHOOK_ALLOW="")
    async with httpx.AsyncClient(base_url=api, timeout=30, headers=headers(stack)) as client:
        created = await client.post("/v1/admin/webhooks", json={
            "url": "https://crm.example.com/hooks", "journeys": ["shop"], "to_stages": ["intent", "purchase"],
            "description": "abandoned carts"})
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["id"].startswith("wh_") and body["secret"].startswith("whsec_")
        assert (body["url"], body["journeys"], body["to_stages"], body["disabled_at"]) == \
            ("https://crm.example.com/hooks", ["shop"], ["intent", "purchase"], None)
        listed = (await client.get("/v1/admin/webhooks")).json()["webhooks"]
        assert [w["id"] for w in listed] == [body["id"]]
        assert "secret" not in listed[0] and body["secret"] not in str(listed)
        one = (await client.get(f"/v1/admin/webhooks/{body['id']}")).json()
        assert one == listed[0]
        assert (await client.get(f"/v1/admin/webhooks/{body['id']}/deliveries")).json() == \
            {"deliveries": [], "next_cursor": None}
        assert (await client.delete(f"/v1/admin/webhooks/{body['id']}")).status_code == 204
        for method, path in (("GET", ""), ("DELETE", ""), ("POST", "/rotate-secret"), ("POST", "/enable"),
                             ("GET", "/deliveries")):
            gone = await client.request(method, f"/v1/admin/webhooks/{body['id']}{path}")
            assert gone.status_code == 404, (method, path)
            assert gone.json()["code"] == "unknown_webhook"
        replay = await client.post(f"/v1/admin/webhooks/{body['id']}/replay",
                                   params={"since": "2026-01-01T00:00:00Z"})
        assert replay.status_code == 404


@pytest.mark.parametrize(("payload", "says"), [
    ({"url": "http://127.0.0.1:9000/hook"}, "loopback"),
    ({"url": "http://localhost/hook"}, "loopback"),
    ({"url": "http://10.1.2.3/hook"}, "private"),
    ({"url": "http://169.254.169.254/latest"}, "link-local"),
    ({"url": "ftp://example.com/"}, "url"),
    ({"url": "not a url"}, "url"),
    ({"url": "https://u:p@example.com/"}, "credentials"),
    ({"url": "https://example.com/", "journeys": ["nope"]}, "journey 'nope' is not defined"),
    ({"url": "https://example.com/", "to_stages": ["nope"]}, "'nope' is not a stage"),
    ({"url": "https://example.com/", "journeys": []}, "journeys"),
    ({"url": "https://example.com/", "secret": "mine"}, "secret"),
    ({"url": "https://example.com/", "description": "x" * 101}, "description"),
])
async def test_registration_refuses_what_cannot_be_sent_to(stack: Stack, payload: dict, says: str) -> None:
    api = stack.start_api(STAGELINE_WEBHOOK_ALLOW="")
    async with httpx.AsyncClient(base_url=api, timeout=30, headers=headers(stack)) as client:
        answer = await client.post("/v1/admin/webhooks", json=payload)
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == "invalid_request"
        assert says in answer.json()["message"]
        assert (await client.get("/v1/admin/webhooks")).json() == {"webhooks": []}


async def test_loopback_is_accepted_when_allowed_and_keys_are_checked(stack: Stack) -> None:
    api = stack.start_api(STAGELINE_WEBHOOK_ALLOW="loopback")
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        payload = {"url": "http://127.0.0.1:9000/hook"}
        assert (await client.post("/v1/admin/webhooks", json=payload)).status_code == 401
        read = await client.post("/v1/admin/webhooks", json=payload, headers=headers(stack, "read"))
        assert read.status_code == 403
        created = await client.post("/v1/admin/webhooks", json=payload, headers=headers(stack))
        assert created.status_code == 201, created.text
        endpoint = created.json()
        rotated = await client.post(f"/v1/admin/webhooks/{endpoint['id']}/rotate-secret",
                                    headers=headers(stack), params={"grace_seconds": 60})
        assert rotated.status_code == 200
        assert rotated.json()["secret"] != endpoint["secret"]
        state = (await client.get(f"/v1/admin/webhooks/{endpoint['id']}", headers=headers(stack))).json()
        assert state["previous_secret_until"] is not None
        for bad in ("wh_x", "key_0123456789ab", "wh_0123456789ab/../x"):
            assert (await client.get(f"/v1/admin/webhooks/{bad}", headers=headers(stack))).status_code in (404, 422)
        bad_cursor = await client.get(f"/v1/admin/webhooks/{endpoint['id']}/deliveries",
                                      headers=headers(stack), params={"cursor": "x"})
        assert bad_cursor.status_code == 400
        naive = await client.post(f"/v1/admin/webhooks/{endpoint['id']}/replay", headers=headers(stack),
                                  params={"since": "2026-01-01T00:00:00"})
        assert naive.status_code == 422
