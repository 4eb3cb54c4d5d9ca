"""The Segment API's refusals on a running ingest: Segment-style errors, rate limits, CORS, a broker down."""

import gzip
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from stageline_devstack.broker import Broker
from stageline_devstack.ports import free_port
from stageline_ingest.app import create_app
from stageline_ingest.settings import IngestSettings
from tests.fixtures.keys import create_keys
from tests.fixtures.polling import metric
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.integration


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
