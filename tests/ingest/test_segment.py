"""The Segment HTTP Tracking API on ingest, through HTTP, the real broker, the stager and the API.

Identity stitching (anonymousId → userId) is the stager's business; these tests only read the
timeline of the id each event was keyed by, and give alias/identify calls ids with no other events.
"""

import gzip
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from stageline_devstack.broker import Broker
from stageline_devstack.ports import free_port
from stageline_ingest.app import create_app
from stageline_ingest.settings import IngestSettings
from tests.fixtures.keys import create_keys
from tests.fixtures.polling import metric, touchpoints_of, wait_applied
from tests.fixtures.segment_payloads import body_of, load_fixtures
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.integration

ROUTES = ["track", "identify", "page", "screen", "group", "alias"]
EVENT_NAMES = {"identify": "Identified", "page": "Page Viewed", "screen": "Screen Viewed",
               "group": "Group Joined", "alias": "Alias"}


def _message(route: str, run: str, mode: str) -> dict[str, Any]:
    """One call of `route` whose customer id (the userId, else anonymousId) is unique to it."""
    customer = f"{run}-{route}-{mode}"
    message: dict[str, Any] = {"messageId": f"m-{customer}", "userId": customer}
    if route == "track":
        message |= {"event": "Order Completed", "properties": {"total": 42.5}}
    elif route == "identify":
        message |= {"traits": {"plan": "pro"}}
    elif route == "page":
        del message["userId"]
        message |= {"anonymousId": customer, "name": "Pricing", "category": "Docs"}
    elif route == "screen":
        message |= {"name": "Cart"}
    elif route == "group":
        message |= {"groupId": "acme", "traits": {"employees": 40}}
    else:
        message |= {"previousId": f"{customer}-before"}
    return message


def _customer(message: dict[str, Any]) -> str:
    return str(message.get("userId") or message["anonymousId"])


async def test_every_route_is_accepted_and_reaches_the_timeline(stack: Stack) -> None:
    ingest = stack.start_ingest()
    stack.start_stager()
    api = stack.start_api()
    run = uuid.uuid4().hex[:6]
    sent: list[tuple[dict[str, Any], str]] = []  # (message, expected event name)
    async with httpx.AsyncClient(base_url=ingest, timeout=30) as plain:
        for route in ROUTES:
            basic = _message(route, run, "basic")
            response = await plain.post(f"/v1/{route}", json=basic, auth=(stack.write_key, ""))
            assert (response.status_code, response.json()) == (200, {"success": True}), response.text
            in_body = _message(route, run, "body") | {"writeKey": stack.write_key, "_metadata": {"x": 1}}
            response = await plain.post(f"/v1/{route}", json=in_body)
            assert (response.status_code, response.json()) == (200, {"success": True}), response.text
            bearer = _message(route, run, "bearer")
            response = await plain.post(f"/v1/{route}", json=bearer,
                                        headers={"Authorization": f"Bearer {stack.write_key}"})
            assert response.status_code == 200, response.text
            # analytics.js's short path (/v1/t for track, …), its body labelled text/plain.
            short = _message(route, run, "short") | {"type": route, "writeKey": stack.write_key}
            response = await plain.post(f"/v1/{route[0]}", content=orjson.dumps(short),
                                        headers={"Content-Type": "text/plain"}, auth=(stack.write_key, ""))
            assert (response.status_code, response.json()) == (200, {"success": True}), response.text
            name = EVENT_NAMES.get(route, "Order Completed")
            sent += [(basic, name), (in_body, name), (bearer, name), (short, name)]

        # A batch, gzip-compressed and labelled text/plain (as browser beacons send), carrying
        # its writeKey, context and sentAt the way analytics-node does, with one bad message.
        device_clock = datetime.now(UTC) + timedelta(hours=2)  # two hours fast
        batch = [
            {"type": "track", "userId": f"{run}-skewed", "event": "Product Viewed", "messageId": f"m-{run}-skewed",
             "originalTimestamp": (device_clock - timedelta(minutes=10)).isoformat()},
            {"type": "track", "event": "No Id At All"},
            {"type": "page", "anonymousId": f"{run}-batch-page", "name": "Home", "messageId": f"m-{run}-page",
             "context": {"channel": "ads"}},
        ]
        body = {"batch": batch, "writeKey": stack.write_key, "sentAt": device_clock.isoformat(),
                "context": {"library": {"name": "test"}}}
        response = await plain.post("/v1/batch", content=gzip.compress(orjson.dumps(body)),
                                    headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["success"] is True and answer["accepted"] == 2
        assert answer["rejected"] == [{"index": 1, "code": "invalid_event",
                                       "error": "userId: required (or anonymousId)"}]

        # analytics.js's batching mode posts to /v1/b.
        batched = {"type": "track", "userId": f"{run}-b", "event": "Ad Clicked", "messageId": f"m-{run}-b"}
        response = await plain.post("/v1/b", content=orjson.dumps({"batch": [batched], "writeKey": stack.write_key}),
                                    headers={"Content-Type": "text/plain"}, auth=(stack.write_key, ""))
        assert response.status_code == 200, response.text
        assert response.json() == {"success": True, "accepted": 1, "rejected": []}
        sent.append((batched, "Ad Clicked"))

        metrics = (await plain.get("/metrics")).text
        assert metric(metrics, "stageline_ingest_events_accepted_total") == len(sent) + 2
        assert metric(metrics, "stageline_ingest_events_rejected_total", reason="invalid") == 1
        # The short paths are their own route templates in the request metric.
        assert metric(metrics, "stageline_http_request_duration_seconds_count", route="/v1/t") == 1

    await wait_applied(stack.database_url, stack.topic, len(sent) + 2)
    async with stack.client() as client:
        for message, event in sent:
            [item] = await touchpoints_of(client, api, _customer(message))
            assert (item["event_id"], item["event"]) == (message["messageId"], event), message
        [page] = await touchpoints_of(client, api, f"{run}-page-basic")
        assert page["channel"] == "web"
        assert page["properties"] == {"name": "Pricing", "category": "Docs"}
        [identify] = await touchpoints_of(client, api, f"{run}-identify-body")
        assert identify["properties"] == {"plan": "pro"}

        [skewed] = await touchpoints_of(client, api, f"{run}-skewed")
        # Corrected for the device's clock: ten minutes before the request, not two hours ahead.
        happened = datetime.fromisoformat(skewed["occurred_at"])
        assert abs(happened - (datetime.now(UTC) - timedelta(minutes=10))) < timedelta(minutes=1)
        [batch_page] = await touchpoints_of(client, api, f"{run}-batch-page")
        assert (batch_page["event"], batch_page["channel"]) == ("Page Viewed", "ads")


async def test_analytics_js_one_letter_paths(stack: Stack) -> None:
    # analytics.js (analytics-next) posts each call to /v1/<first letter of its type> as
    # text/plain with the writeKey in the body, or batches to /v1/b with a Basic header too.
    ingest = stack.start_ingest()
    stack.start_stager()
    api = stack.start_api()
    run = uuid.uuid4().hex[:6]
    now = datetime.now(UTC).isoformat()
    calls = {route: _message(route, run, "ajs") | {"type": route, "timestamp": now, "sentAt": now,
                                                  "writeKey": stack.write_key}
             for route in ROUTES}
    batched = {"type": "track", "event": "Product Viewed", "anonymousId": f"{run}-ajs-batched",
               "userId": None, "messageId": f"ajs-next-{run}", "timestamp": now}
    async with httpx.AsyncClient(base_url=ingest, timeout=30) as plain:
        for route, message in calls.items():
            response = await plain.post(f"/v1/{route[0]}", content=orjson.dumps(message),
                                        headers={"Content-Type": "text/plain"})
            assert (response.status_code, response.json()) == (200, {"success": True}), response.text
        response = await plain.post(
            "/v1/b", auth=(stack.write_key, ""), headers={"Content-Type": "text/plain"},
            content=orjson.dumps({"writeKey": stack.write_key, "batch": [batched], "sentAt": now}))
        assert response.status_code == 200 and response.json()["accepted"] == 1, response.text
    await wait_applied(stack.database_url, stack.topic, len(calls) + 1)
    async with stack.client() as client:
        for route, message in calls.items():
            [item] = await touchpoints_of(client, api, _customer(message))
            assert (item["event_id"], item["event"]) == \
                (message["messageId"], EVENT_NAMES.get(route, "Order Completed")), message
        [item] = await touchpoints_of(client, api, f"{run}-ajs-batched")
        assert (item["event_id"], item["event"]) == (f"ajs-next-{run}", "Product Viewed")


async def test_real_sdk_payloads_get_the_answers_their_fixtures_give(stack: Stack) -> None:
    # The fixtures of tests/fixtures/segment_payloads, through HTTP to a running ingest and on
    # through the broker to the stager; the key goes in the header, which wins over a body's.
    ingest = stack.start_ingest()
    stack.start_stager()
    api = stack.start_api()
    fixtures = load_fixtures()
    accepted = 0
    async with httpx.AsyncClient(base_url=ingest, timeout=30, auth=(stack.write_key, "")) as plain:
        for fixture in fixtures:
            headers = fixture.get("headers", {"Content-Type": "application/json"})
            response = await plain.post(fixture["path"], content=body_of(fixture), headers=headers)
            expected = fixture["stageline"]
            assert response.status_code == expected["status"], (fixture["name"], response.text)
            answer = response.json()
            if expected["status"] == 200:
                assert answer["success"] is True and answer.get("rejected", []) == [], fixture["name"]
                accepted += len(expected["touchpoints"])
            else:
                assert expected["error"] in answer["message"], (fixture["name"], answer)
        metrics = (await plain.get("/metrics")).text
    assert metric(metrics, "stageline_ingest_events_accepted_total") == accepted
    await wait_applied(stack.database_url, stack.topic, accepted)
    async with stack.client() as client:
        [item] = await touchpoints_of(client, api, "49e4bdd1c280bc00")  # rudder-server's script
        assert item["event"] == "Demo Track - New"


async def test_resent_message_ids_are_stored_once(stack: Stack) -> None:
    ingest = stack.start_ingest()
    stack.start_stager()
    api = stack.start_api()
    message = {"type": "track", "userId": "dup-1", "event": "Ad Clicked", "messageId": "m-dup-1"}
    async with httpx.AsyncClient(base_url=ingest, timeout=30, auth=(stack.write_key, "")) as plain:
        for _ in range(3):
            assert (await plain.post("/v1/batch", json={"batch": [message]})).status_code == 200
    await wait_applied(stack.database_url, stack.topic, 3)
    async with stack.client() as client:
        assert [t["event_id"] for t in await touchpoints_of(client, api, "dup-1")] == ["m-dup-1"]


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    assert body["message"], body
    return dict(body)


async def test_bad_requests_get_segment_style_errors(stack: Stack) -> None:
    ingest = stack.start_ingest()
    track = {"userId": "u-1", "event": "Product Viewed"}
    async with httpx.AsyncClient(base_url=ingest, timeout=30, auth=(stack.write_key, "")) as plain:
        gz = {"Content-Encoding": "gzip"}
        _error(await plain.post("/v1/track", content=b"\x1f\x8b not really gzip", headers=gz),
               400, "malformed_gzip")
        _error(await plain.post("/v1/batch", content=gzip.compress(b'{"batch": [')[:-4], headers=gz),
               400, "malformed_gzip")
        _error(await plain.post("/v1/track", content=b'{"userId": '), 400, "malformed_json")
        _error(await plain.post("/v1/track", content=b"[]"), 400, "invalid_body")
        error = _error(await plain.post("/v1/track", json={"event": "x"}), 400, "invalid_event")
        assert "userId" in error["message"]

        big = track | {"properties": {"p": "x" * 33_000}}
        error = _error(await plain.post("/v1/track", json=big), 413, "event_too_large")
        assert "limit is 32768" in error["message"]
        huge = {"batch": [track | {"properties": {"p": "x" * 20_000}}] * 30}  # ~600 KB
        _error(await plain.post("/v1/batch", json=huge), 413, "body_too_large")
        bomb = gzip.compress(orjson.dumps({"batch": [track] * 2000}) + b" " * 600_000)
        assert len(bomb) < 20_000
        error = _error(await plain.post("/v1/batch", content=bomb, headers=gz), 413, "body_too_large")
        assert "decompressed" in error["message"]

        error = _error(await plain.post("/v1/batch", json={"batch": [track] * 2501}), 413, "too_many_events")
        assert "limit is 2500" in error["message"]
        error = _error(await plain.post("/v1/batch", json={"batch": [{"type": "track"}, 5]}),
                       400, "no_valid_events")
        assert [r["index"] for r in error["rejected"]] == [0, 1]

        ok = await plain.post("/v1/batch", json={"batch": [
            {"type": "track", **big}, {"type": "track", **track, "messageId": "kept"},
            {"type": "identify", "userId": "u-1", "traits": {"bad": "\u0000"}},
        ]})
        assert ok.status_code == 200, ok.text
        assert ok.json()["accepted"] == 1
        assert [(r["index"], r["code"]) for r in ok.json()["rejected"]] == \
            [(0, "event_too_large"), (2, "invalid_event")]
        assert "traits.bad" in ok.json()["rejected"][1]["error"]

        metrics = (await plain.get("/metrics")).text
        assert metric(metrics, "stageline_ingest_events_rejected_total", reason="malformed_gzip") == 2
        assert metric(metrics, "stageline_ingest_events_rejected_total", reason="too_large") == 2
        assert metric(metrics, "stageline_ingest_events_accepted_total") == 1

    async with httpx.AsyncClient(base_url=ingest, timeout=30) as anonymous:
        _error(await anonymous.post("/v1/track", json=track), 401, "missing_key")
        _error(await anonymous.post("/v1/track", json=track | {"writeKey": "sl_write_nope"}), 401, "invalid_key")
        _error(await anonymous.post("/v1/track", json=track, auth=("sl_write_nope", "")), 401, "invalid_key")
        # A header wins over the body: a wrong header is not rescued by a right writeKey.
        _error(await anonymous.post("/v1/track", json=track | {"writeKey": stack.write_key},
                                    auth=("sl_write_nope", "")), 401, "invalid_key")
        _error(await anonymous.post("/v1/batch", json={"batch": [track], "writeKey": stack.keys["read"]}),
               403, "wrong_key_kind")


async def test_rate_limit_answers_429_with_retry_after(stack: Stack) -> None:
    ingest = stack.start_ingest(STAGELINE_RATE_LIMIT_RPS="0.01", STAGELINE_RATE_LIMIT_BURST="1")
    message = {"userId": "u-1", "event": "E", "writeKey": stack.write_key}
    async with httpx.AsyncClient(base_url=ingest, timeout=30) as plain:
        assert (await plain.post("/v1/track", json=message)).status_code == 200
        response = await plain.post("/v1/track", json=message)
        _error(response, 429, "rate_limited")
        assert int(response.headers["retry-after"]) >= 1


async def test_cors_preflight_only_for_configured_origins(stack: Stack) -> None:
    ingest = stack.start_ingest(STAGELINE_CORS_ORIGINS='["https://shop.example"]')
    # What Chromium names in a preflight for each SDK's requests (first sends and retries).
    sdk_headers = {
        "analytics.js": "authorization,content-type,x-retry-count",
        "RudderStack": "anonymousid,authorization,content-type,rsa-recovered,rsa-retry-attempt,"
                       "rsa-retry-reason,rsa-since-first-attempt,rsa-since-last-attempt,sentat",
    }
    async with httpx.AsyncClient(base_url=ingest, timeout=30) as plain:
        for sdk, requested in sdk_headers.items():
            for path in ("/v1/batch", "/v1/t", "/v1/b", "/v1/page"):
                allowed = await plain.options(path, headers={
                    "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": requested})
                assert allowed.status_code == 200, (sdk, path, allowed.text)
                assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
                granted = {h.strip().lower() for h in allowed.headers["access-control-allow-headers"].split(",")}
                assert set(requested.split(",")) <= granted, (sdk, granted)
        preflight = {"Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization, content-type"}
        other = await plain.options("/v1/batch", headers={"Origin": "https://evil.example", **preflight})
        assert other.status_code == 400, other.text
        assert "access-control-allow-origin" not in other.headers
        # Not every header: one no SDK sends is refused.
        odd = await plain.options("/v1/batch", headers={
            "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-made-up"})
        assert odd.status_code == 400, odd.text
        # An answer to the page's origin lets its script read Retry-After (a 429 or 503 says when to retry).
        refused = await plain.post("/v1/t", content=b"{}", headers={"Origin": "https://shop.example"})
        assert refused.status_code == 401, refused.text
        assert refused.headers["access-control-allow-origin"] == "https://shop.example"
        assert refused.headers["access-control-expose-headers"].lower() == "retry-after"


@pytest.fixture
async def own_broker() -> AsyncIterator[Broker]:
    broker = Broker(free_port()).start()
    try:
        yield broker
    finally:
        broker.stop()


async def test_broker_down_answers_503_and_nothing_is_acknowledged(
    own_broker: Broker, topic: str, database_url: str
) -> None:
    settings = IngestSettings(KAFKA_BOOTSTRAP_SERVERS=own_broker.bootstrap_servers, topic=topic,
                              topic_partitions=1, produce_timeout_s=2, retry_after_s=7,
                              DATABASE_URL=database_url)
    keys = await create_keys(database_url)
    app = create_app(settings)
    message = {"userId": "u-1", "event": "E"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest",
                                     auth=(keys["write"], "")) as client:
            assert (await client.post("/v1/track", json=message)).status_code == 200
            own_broker.stop()
            response = await client.post("/v1/batch", json={"batch": [{"type": "track", **message}]})
            error = _error(response, 503, "broker_unavailable")
            assert response.headers["retry-after"] == "7"
            assert "messageId" in error["message"]
