"""The Segment HTTP Tracking API on ingest: what it accepts reaches the timeline, through the broker,
the stager and the API (its refusals: test_segment_errors.py).

Identity stitching (anonymousId → userId) is the stager's business; these tests only read the
timeline of the id each event was keyed by, and give alias/identify calls ids with no other events.
"""

import gzip
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

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
