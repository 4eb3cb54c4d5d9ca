"""Bad input gets a clear 4xx naming the problem (never a 500); a dead broker gets a 503."""

import gzip
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client.parser import text_string_to_metric_families

from stageline_devstack.broker import Broker
from stageline_devstack.ports import free_port
from stageline_ingest.app import create_app
from stageline_ingest.native.dispatch import EventsDispatch
from stageline_ingest.settings import IngestSettings
from stageline_shared.http_metrics import _Timed
from stageline_shared.urls import Utf8Urls
from tests.fixtures.keys import create_keys
from tests.fixtures.polling import wait_applied
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.integration

GOOD = {"customer_id": "c-1", "event": "Product Viewed"}


async def _client(app: FastAPI, write_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest",
                                     auth=(write_key, "")) as client:
            yield client


@pytest.fixture
async def ingest(broker: Broker, topic: str, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = IngestSettings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers, topic=topic,
                              topic_partitions=2, DATABASE_URL=database_url)
    keys = await create_keys(database_url)
    async for client in _client(create_app(settings), keys["write"]):
        yield client


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert {"code", "message"} <= set(body), body
    return dict(body)


@pytest.mark.parametrize(
    ("body", "status", "code", "fragment"),
    [
        (b'{"customer_id": "c-1", "event": ', 400, "malformed_json", "request body is not valid JSON"),
        (b"", 400, "malformed_json", "request body is not valid JSON: it is empty"),
        (b'"just a string"', 400, "invalid_body", "got str"),
        (b"[1, 2]", 400, "invalid_body", "got list"),
        (b'{"batch": {"customer_id": "c"}}', 400, "invalid_body", "batch must be a JSON array"),
        (b'{"batch": [], "extra": 1}', 400, "invalid_body", "unexpected: extra"),
        (b'{"batch": []}', 422, "no_valid_events", "batch is empty"),
        (b'{"event": "Product Viewed"}', 422, "no_valid_events", "customer_id: required"),
        (b'{"customer_id": 42, "event": "x"}', 422, "no_valid_events", "customer_id: must be a string"),
        (b'{"customer_id": "c", "event": ["x"]}', 422, "no_valid_events", "event: must be a string"),
        (b'{"customer_id": "c", "event": "x", "properties": []}', 422, "no_valid_events", "properties"),
        (b'{"customer_id": "c", "event": "x", "occurred_at": "yesterday"}', 422, "no_valid_events", "occurred_at"),
        (b'{"customer_id": "c", "event": "x", "occurred_at": "2026-01-01T00:00:00"}', 422, "no_valid_events", "UTC offset"),
        (b'{"customer_id": "c", "event": "x", "occurred_at": 1700000000}', 422, "no_valid_events", "occurred_at"),
        (b'{"customer_id": "c", "event": "x", "occurred_at": "0001-01-01T00:00:00+01:00"}', 422, "no_valid_events", "out of range"),
        (b'{"customer_id": "c\\u0000", "event": "x"}', 422, "no_valid_events", "U+0000"),
        (b'{"customer_id": "a\\nb", "event": "x"}', 422, "no_valid_events", "control character (U+000A)"),
        (b'{"customer_id": "c", "event": "x", "properties": {"a": {"b": "\\u0000"}}}', 422, "no_valid_events", "properties.a.b"),
        (b'{"customer_id": "\\ud800", "event": "x"}', 400, "malformed_json", "lone surrogate escape \\ud800 (at byte 17)"),
        (b'{"customer_id": "\xff", "event": "x"}', 400, "malformed_json", "request body is not valid UTF-8 (at byte 17)"),
        (b'{"batch": [{"customer_id": "c", "event": "x\xed\xa0\x80"}]}', 400, "malformed_json",
         "request body is not valid UTF-8 (at byte 43)"),
        (b'{"customer_id": "   ", "event": "x"}', 422, "no_valid_events", "blank"),
        (b'{"customer_id": "c", "event": "x", "custmer": 1}', 422, "no_valid_events", "custmer: unknown field"),
        (orjson.dumps({"customer_id": "c" * 256, "event": "x"}), 422, "no_valid_events", "customer_id"),
        (b'{"customer_id": "c", "event": "x", "properties": {"p": ' + b"[" * 32 + b"]" * 32 + b"}}", 422,
         "no_valid_events", "properties nests objects and arrays more than 32 levels deep"),
        (b'{"batch": [{"customer_id": "c", "event": "x", "properties": {"p": ' + b"[" * 5000, 400,
         "malformed_json", "nested too deeply"),
        (orjson.dumps({"batch": [GOOD] * 1001}), 413, "too_many_events", "limit is 1000"),
        (orjson.dumps({"customer_id": "c", "event": "x", "properties": {"p": "x" * 600_000}}), 413,
         "body_too_large", "limit is 524288"),
    ],
)
async def test_bad_bodies_get_a_4xx_naming_the_problem(
    ingest: httpx.AsyncClient, body: bytes, status: int, code: str, fragment: str
) -> None:
    response = await ingest.post("/v1/events", content=body,
                                 headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["code"] == code
    assert fragment in error["message"], error["message"]


async def test_oversize_body_without_content_length_is_refused(ingest: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"batch": ['
        for _ in range(200):
            yield orjson.dumps(GOOD | {"properties": {"p": "x" * 4000}}) + b","
        yield orjson.dumps(GOOD) + b"]}"

    response = await ingest.post("/v1/events", content=chunks())
    assert response.status_code == 413
    assert error_of(response)["code"] == "body_too_large"


async def test_invalid_events_in_a_batch_do_not_lose_the_good_ones(ingest: httpx.AsyncClient) -> None:
    batch = [
        GOOD | {"event_id": "ok-1"},
        {"customer_id": 5, "event": "x"},
        GOOD | {"event_id": "ok-2", "properties": {"big": "x" * 40_000}},
        "not an object",
        GOOD | {"event_id": "ok-3", "occurred_at": "2999-01-01T00:00:00Z"},
    ]
    response = await ingest.post("/v1/events", json={"batch": batch})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 2
    assert body["event_ids"] == ["ok-1", "ok-3"]
    assert [r["index"] for r in body["rejected"]] == [1, 2, 3]
    assert "customer_id" in body["rejected"][0]["error"]
    assert "limit is 32768" in body["rejected"][1]["error"]
    assert "JSON object" in body["rejected"][2]["error"]


async def test_wrong_method_and_path_are_json_errors(ingest: httpx.AsyncClient) -> None:
    response = await ingest.get("/v1/events")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    response = await ingest.post("/v1/nowhere", json=GOOD)
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


async def test_gzip_body_is_not_special_cased(ingest: httpx.AsyncClient) -> None:
    # Issue 4 adds Content-Encoding: gzip; until then a compressed body is malformed JSON.
    response = await ingest.post("/v1/events", content=gzip.compress(orjson.dumps(GOOD)))
    assert response.status_code == 400


async def test_broker_down_answers_503_with_retry_after(topic: str, database_url: str) -> None:
    own = Broker(free_port()).start()
    settings = IngestSettings(KAFKA_BOOTSTRAP_SERVERS=own.bootstrap_servers, topic=topic,
                              topic_partitions=1, produce_timeout_s=2, retry_after_s=7,
                              DATABASE_URL=database_url)
    keys = await create_keys(database_url)
    try:
        async for client in _client(create_app(settings), keys["write"]):
            response = await client.post("/v1/events", json=GOOD)
            assert response.status_code == 202, response.text
            assert (await client.get("/readyz")).status_code == 200
            own.stop()
            response = await client.post("/v1/events", json={"batch": [GOOD, GOOD]})
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "7"
            error = error_of(response)
            assert error["code"] == "broker_unavailable"
            assert "nothing was acknowledged" in error["message"]
            assert (await client.get("/readyz")).status_code == 503
    finally:
        own.stop()


HOSTILE = [
    "Robert'); DROP TABLE touchpoints;--",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "emoji 🧭 and RTL \u202ekcilc",
    'quote"backslash\\ and ☃',
    "%s %n {0} ${jndi:ldap://x}",
]


async def test_hostile_strings_are_stored_verbatim(stack: Stack) -> None:
    ingest = stack.start_ingest()
    stack.start_stager()
    api = stack.start_api()
    events = [
        {"event_id": f"h-{i}", "customer_id": f"cust {value}", "event": value,
         "channel": "web", "properties": {value: value, "multi": "tab\tnewline\n"}}
        for i, value in enumerate(HOSTILE)
    ]
    async with stack.client() as client:
        response = await client.post(f"{ingest}/v1/events", json={"batch": events},
                                     auth=(stack.write_key, ""))
        assert response.status_code == 202, response.text
        await wait_applied(stack.database_url, stack.topic, len(events))
        for event in events:
            customer = quote(str(event["customer_id"]), safe="")
            response = await client.get(f"{api}/v1/customers/{customer}/timeline")
            assert response.status_code == 200, (event, response.text)
            [item] = [i for i in response.json()["items"] if i["type"] == "touchpoint"]
            assert item["event"] == event["event"]
            assert item["properties"] == event["properties"]
            response = await client.get(f"{api}/v1/customers/{customer}")
            assert response.status_code == 200, response.text
            assert response.json()["customer_id"] == event["customer_id"]


async def test_events_take_the_fast_path_inside_cors_and_the_request_metric(
    broker: Broker, topic: str, database_url: str
) -> None:
    """POST /v1/events skips FastAPI's routing (stageline_ingest.native.dispatch) yet keeps CORS, the
    request metric, the URL check and the error answers every route has."""
    settings = IngestSettings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers, topic=topic,
                              topic_partitions=1, DATABASE_URL=database_url,
                              cors_origins=["https://shop.example"])
    keys = await create_keys(database_url)
    app = create_app(settings)
    assert [m.cls for m in app.user_middleware] == [CORSMiddleware, _Timed, Utf8Urls, EventsDispatch]
    async for client in _client(app, keys["write"]):
        before = _request_counts((await client.get("/metrics")).text)
        origin = {"Origin": "https://shop.example"}
        accepted = await client.post("/v1/events", json=GOOD, headers=origin)
        assert accepted.status_code == 202, accepted.text
        assert accepted.headers["access-control-allow-origin"] == "https://shop.example"
        refused = await client.post("/v1/events", json=GOOD, auth=("nope", ""))
        assert (refused.status_code, error_of(refused)["code"]) == (401, "invalid_key")
        malformed = await client.post("/v1/events", content=b"{")
        assert (malformed.status_code, error_of(malformed)["code"]) == (400, "malformed_json")
        not_utf8 = await client.post("/v1/events?x=%ff", json=GOOD)
        assert (not_utf8.status_code, error_of(not_utf8)["code"]) == (400, "malformed_url")
        after = _request_counts((await client.get("/metrics")).text)
    changed = {status: after[status] - before.get(status, 0) for status in after}
    assert {status: n for status, n in changed.items() if n} == {"202": 1, "401": 1, "400": 1}


def _request_counts(metrics: str) -> dict[str, float]:
    """Requests to POST /v1/events by status, from ingest's request metric."""
    return {sample.labels["status"]: sample.value
            for family in text_string_to_metric_families(metrics) for sample in family.samples
            if sample.name == "stageline_http_request_duration_seconds_count"
            and sample.labels["route"] == "/v1/events" and sample.labels["method"] == "POST"
            and sample.labels["service"] == "ingest"}
