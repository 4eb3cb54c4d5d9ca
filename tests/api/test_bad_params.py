"""Hostile path and query values get a JSON 4xx with a code from every service, never a 500,
and a customer id that could not be a customer's is never sent to the topic as an erase request.

The values are written as they travel, percent-encoded, so they include what no client library
would send from text: invalid UTF-8, encoded surrogates, overlong encodings. One stack (with a
customer, so that a value let through would answer 200) serves every case.
"""

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from stageline_devstack.broker import Broker
from stageline_devstack.databases import drop_database, ensure_database
from tests.fixtures.events import post_events
from tests.fixtures.keys import create_keys
from tests.fixtures.polling import wait_applied
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.integration

# Each is refused wherever a path parameter takes it: 400 malformed_url or 422 invalid_request.
HOSTILE_PATH_VALUES: list[tuple[str, str]] = [
    ("nul", "%00"),
    ("nul-inside", "a%00b"),
    ("control", "%01"),
    ("newline", "a%0Ab"),
    ("tab", "%09"),
    ("delete", "%7F"),
    ("blank", "%20%20"),
    ("invalid-utf8", "%FF"),
    ("truncated-utf8", "a%C3"),
    ("overlong-utf8", "%C0%AF"),
    ("encoded-surrogate", "%ED%A0%80"),
    ("beyond-unicode", "%F4%90%80%80"),
    ("too-long", "a" * 256),
    ("very-long", "a" * 10_000),
]

# (method, route template); every operation of the API document with a path parameter.
PATH_ROUTES: list[tuple[str, str]] = [
    ("GET", "/v1/customers/{customer_id}"),
    ("GET", "/v1/customers/{customer_id}/timeline"),
    ("DELETE", "/v1/customers/{customer_id}"),
    ("GET", "/v1/journeys/{journey}/stages"),
    ("DELETE", "/v1/admin/keys/{key_id}"),
    ("GET", "/v1/journeys/{journey}/stages/{stage}/customers"),
    ("GET", "/v1/admin/webhooks/{endpoint_id}"),
    ("DELETE", "/v1/admin/webhooks/{endpoint_id}"),
    ("POST", "/v1/admin/webhooks/{endpoint_id}/rotate-secret"),
    ("POST", "/v1/admin/webhooks/{endpoint_id}/enable"),
    ("GET", "/v1/admin/webhooks/{endpoint_id}/deliveries"),
    ("POST", "/v1/admin/webhooks/{endpoint_id}/replay"),
]
URL_OR_PARAMETER = {"malformed_url", "invalid_request"}


def _cursor(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


AT = "2026-11-01T12:00:00+00:00"
BAD_CURSORS: list[tuple[str, str]] = [
    ("garbage", "not-a-cursor"),
    ("nul", "%00"),
    ("invalid-utf8", "%FF"),
    ("very-long", "A" * 10_000),
    ("padding-only", "===="),
    ("base64-of-junk", _cursor(b"\xff\xfe\x00junk")),
    ("object", _cursor({"a": 1})),
    ("too-few", _cursor([AT, 0])),
    ("naive-time", _cursor(["2026-11-01T12:00:00", 0, "x"])),
    ("time-below-utc-range", _cursor(["0001-01-01T00:00:00+14:00", 0, ""])),
    ("time-above-utc-range", _cursor(["9999-12-31T23:59:59-14:00", 0, ""])),
    ("kind-out-of-range", _cursor([AT, 10**30, "x"])),
    ("kind-not-ours", _cursor([AT, 7, "x"])),
    ("kind-a-float", _cursor([AT, 1e300, "x"])),
    ("kind-infinite", _cursor(f'["{AT}", 1e400, "x"]'.encode())),
    ("key-nul", _cursor([AT, 0, "\x00"])),
    ("key-surrogate", _cursor(f'["{AT}", 0, "\\ud800"]'.encode())),
    ("key-too-long", _cursor([AT, 0, "x" * 5000])),
    ("key-a-number", _cursor([AT, 0, 5])),
]
# (case, route, query string, code).
HOSTILE_QUERIES: list[tuple[str, str, str, str | set[str]]] = [
    *[(f"journey-{name}", route, f"journey={value}", URL_OR_PARAMETER)
      for route in ("/v1/customers/alice", "/v1/customers/alice/timeline")
      for name, value in [*HOSTILE_PATH_VALUES, ("empty", ""), ("unknown-shape", "Shop")]],
    *[(f"limit-{name}", "/v1/customers/alice/timeline", f"limit={value}", URL_OR_PARAMETER)
      for name, value in [("negative", "-1"), ("zero", "0"), ("over", "501"), ("exponent", "1e9"),
                          ("fraction", "1.5"), ("empty", ""), ("word", "ten"), ("nul", "%00"),
                          ("hex", "0x10"), ("nan", "NaN"), ("huge", "9" * 5000),
                          ("invalid-utf8", "%FF"), ("encoded-surrogate", "%ED%A0%80")]],
    *[(f"cursor-{name}", "/v1/customers/alice/timeline", f"cursor={value}",
       {"invalid_cursor", "malformed_url"}) for name, value in BAD_CURSORS],
    ("repeated-limit", "/v1/customers/alice/timeline", "limit=1&limit=2", "invalid_request"),
    ("repeated-journey", "/v1/customers/alice", "journey=shop&journey=shop", "invalid_request"),
    ("repeated-cursor", "/v1/customers/alice/timeline", "cursor=a&cursor=b", "invalid_request"),
    ("invalid-utf8-name", "/v1/customers/alice", "%FF=1", "malformed_url"),
]
# (case, method, route, query, codes): the routes acting on stages (audiences, the feed, webhooks).
AUDIENCE = "/v1/journeys/shop/stages/intent/customers"
WEBHOOK = "/v1/admin/webhooks/wh_000000000000"
TIMES = [("naive", "2026-11-01T12:00:00"), ("word", "yesterday"), ("nul", "%00"), ("huge", "9" * 5000),
         ("invalid-utf8", "%FF"), ("empty", "")]
ACTION_QUERIES: list[tuple[str, str, str, str, str | set[str]]] = [
    *[(f"{name}-{case}", "GET", AUDIENCE, f"{name}={value}", URL_OR_PARAMETER)
      for name in ("entered_before", "entered_after") for case, value in TIMES],
    *[(f"limit-{case}", "GET", route, f"limit={value}", URL_OR_PARAMETER)
      for route in (AUDIENCE, "/v1/changes", f"{WEBHOOK}/deliveries")
      for case, value in [("zero", "0"), ("over", "1001"), ("word", "ten"), ("nul", "%00")]],
    *[(f"cursor-{name}", "GET", AUDIENCE, f"cursor={value}", {"invalid_cursor", "malformed_url"})
      for name, value in BAD_CURSORS],
    *[(f"after-{case}", "GET", "/v1/changes", f"after={value}", {"invalid_cursor", "malformed_url"})
      for case, value in [("negative", "-1"), ("word", "x"), ("huge", "9" * 30), ("over-bigint", "9" * 19),
                          ("nul", "%00"), ("invalid-utf8", "%FF")]],
    *[(f"journey-{name}", "GET", "/v1/changes", f"journey={value}", URL_OR_PARAMETER)
      for name, value in [*HOSTILE_PATH_VALUES, ("unknown-shape", "Shop")]],
    *[(f"status-{case}", "GET", f"{WEBHOOK}/deliveries", f"status={value}", URL_OR_PARAMETER)
      for case, value in [("unknown", "sent"), ("nul", "%00"), ("sql", "pending'--")]],
    *[(f"cursor-{case}", "GET", f"{WEBHOOK}/deliveries", f"cursor={value}", {"invalid_cursor", "malformed_url"})
      for case, value in [("word", "x"), ("huge", "9" * 30), ("over-bigint", "9" * 19), ("nul", "%00")]],
    *[(f"grace-{case}", "POST", f"{WEBHOOK}/rotate-secret", f"grace_seconds={value}", URL_OR_PARAMETER)
      for case, value in [("negative", "-1"), ("over", "1e9"), ("word", "x"), ("nan", "NaN")]],
    *[(f"since-{case}", "POST", f"{WEBHOOK}/replay", f"since={value}", URL_OR_PARAMETER)
      for case, value in TIMES],
    ("repeated-limit", "GET", AUDIENCE, "limit=1&limit=2", "invalid_request"),
    ("repeated-after", "GET", "/v1/changes", "after=1&after=2", "invalid_request"),
]
# (case, service, method, target, code): ingest's and the stager's routes take no parameters,
# but a URL that is not UTF-8 is refused before routing, and an unknown path is a JSON 404.
OTHER_SERVICES: list[tuple[str, str, str, str, str]] = [
    ("events-query", "ingest", "POST", "/v1/events?x=%FF", "malformed_url"),
    ("batch-query", "ingest", "POST", "/v1/batch?%ED%A0%80", "malformed_url"),
    ("events-subpath", "ingest", "POST", "/v1/events/%00", "not_found"),
    ("invalid-path", "ingest", "GET", "/v1/%FF", "malformed_url"),
    ("healthz-query", "ingest", "GET", "/healthz?x=%C3", "malformed_url"),
    ("metrics-query", "ingest", "GET", "/metrics?%FF", "malformed_url"),
    ("long-path", "ingest", "POST", "/v1/" + "a" * 10_000, "not_found"),
    ("healthz-query", "stager", "GET", "/healthz?x=%FF", "malformed_url"),
    ("metrics-query", "stager", "GET", "/metrics?%C0%AF", "malformed_url"),
    ("unknown-path", "stager", "GET", "/%00", "not_found"),
    ("subpath", "stager", "GET", "/readyz/%FF", "malformed_url"),
    ("wrong-method", "stager", "POST", "/healthz", "method_not_allowed"),
    ("openapi-query", "api", "GET", "/openapi.json?%FF", "malformed_url"),
    ("unknown-path", "api", "GET", "/v1/%00", "not_found"),
]


@dataclass
class Services:
    urls: dict[str, str]
    keys: dict[str, str]
    produced: "Produced"


class Produced:
    """How many records the broker holds on the test's topic (acks=all: a 202 is counted)."""

    def __init__(self, consumer: AIOKafkaConsumer, topic: str) -> None:
        self._consumer = consumer
        self._topic = topic

    async def count(self) -> int:
        partitions = [TopicPartition(self._topic, p)
                      for p in sorted(self._consumer.partitions_for_topic(self._topic) or ())]
        assert partitions, "the topic has no partitions yet"
        return sum((await self._consumer.end_offsets(partitions)).values())


@pytest.fixture(scope="module")
def module_stack(broker: Broker, pg_server: str, template_db: str, journeys_file: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """As conftest's `stack`, for the whole module: one database, topic and set of services."""
    name = f"stageline_t_{uuid.uuid4().hex[:8]}"
    url = ensure_database(pg_server, name, template=template_db)
    stack = Stack(broker.bootstrap_servers, url, f"touchpoints-{uuid.uuid4().hex[:8]}", journeys_file,
                  tmp_path_factory.mktemp("bad-params"), keys=asyncio.run(create_keys(url)))
    yield stack
    stack.stop_all()
    asyncio.run(drop_database(pg_server, name))


@pytest.fixture(scope="module")
async def services(module_stack: Stack) -> AsyncIterator[Services]:
    stack = module_stack
    urls = {"ingest": stack.start_ingest(), "stager": stack.start_stager().base_url,
            "api": stack.start_api()}
    events = [{"event_id": f"alice-{i}", "customer_id": "alice", "event": name,
               "occurred_at": f"2026-11-01T12:0{i}:00+00:00"}
              for i, name in enumerate(["Ad Clicked", "Product Viewed", "Order Completed"])]
    async with httpx.AsyncClient(timeout=30) as client:
        await post_events(client, urls["ingest"], events, stack.write_key)
    await wait_applied(stack.database_url, stack.topic, len(events))
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap)
    await consumer.start()
    try:
        await consumer.topics()  # loads the topic's partitions
        yield Services(urls, stack.keys, Produced(consumer, stack.topic))
    finally:
        await consumer.stop()


async def _send(services: Services, service: str, method: str, target: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {services.keys['admin' if service == 'api' else 'write']}"}
    async with httpx.AsyncClient(base_url=services.urls[service], timeout=30) as client:
        return await client.request(method, target, headers=headers)


def assert_refused(response: httpx.Response, codes: str | set[str]) -> None:
    what = f"{response.request.method} {str(response.request.url)[:200]}"
    assert 400 <= response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    assert response.headers["content-type"] == "application/json", what
    body = response.json()
    assert body["code"] in ({codes} if isinstance(codes, str) else codes), f"{what}: {body}"
    assert body["message"], what


@pytest.mark.parametrize(("method", "route"), PATH_ROUTES, ids=[f"{m} {r}" for m, r in PATH_ROUTES])
@pytest.mark.parametrize(("case", "value"), HOSTILE_PATH_VALUES, ids=[c for c, _ in HOSTILE_PATH_VALUES])
async def test_hostile_path_values_are_refused(services: Services, method: str, route: str,
                                               case: str, value: str) -> None:
    before = await services.produced.count()
    target = route
    for name in ("customer_id", "journey", "stage", "key_id", "endpoint_id"):
        target = target.replace(f"{{{name}}}", value)
    assert_refused(await _send(services, "api", method, target), URL_OR_PARAMETER)
    # Never an erase request for an id that could not be a customer's (it would be dead-lettered).
    assert await services.produced.count() == before


async def test_an_id_with_a_slash_and_a_nul_is_refused(services: Services) -> None:
    for method, target in [("GET", "/v1/customers/a%2F%00"), ("GET", "/v1/customers/a%2F%00/timeline"),
                           ("DELETE", "/v1/customers/a%2F%00")]:
        assert_refused(await _send(services, "api", method, target), "invalid_request")


@pytest.mark.parametrize(("case", "route", "query", "codes"), HOSTILE_QUERIES,
                         ids=[f"{route.rsplit('/', 1)[-1]}-{case}" for case, route, _, _ in HOSTILE_QUERIES])
async def test_hostile_query_values_are_refused(services: Services, case: str, route: str, query: str,
                                                codes: str | set[str]) -> None:
    assert_refused(await _send(services, "api", "GET", f"{route}?{query}"), codes)


@pytest.mark.parametrize(("case", "method", "route", "query", "codes"), ACTION_QUERIES,
                         ids=[f"{route.rsplit('/', 1)[-1]}-{case}" for case, _, route, _, _ in ACTION_QUERIES])
async def test_hostile_query_values_of_the_stage_actions_are_refused(
    services: Services, case: str, method: str, route: str, query: str, codes: str | set[str]
) -> None:
    assert_refused(await _send(services, "api", method, f"{route}?{query}"), codes)


@pytest.mark.parametrize(("case", "service", "method", "target", "code"), OTHER_SERVICES,
                         ids=[f"{service}-{case}" for case, service, *_ in OTHER_SERVICES])
async def test_hostile_urls_elsewhere_are_refused(services: Services, case: str, service: str,
                                                  method: str, target: str, code: str) -> None:
    assert_refused(await _send(services, service, method, target), code)


async def test_parameters_a_route_does_not_take_are_ignored(services: Services) -> None:
    """Repeated or odd, but valid UTF-8: ignored, as any unknown query parameter is."""
    for service, target in [("api", "/v1/journeys?x=%00&x=%01"), ("ingest", "/healthz?x=%00&x=a"),
                            ("stager", "/healthz?%01=%7F"), ("api", "/v1/customers/alice?limit=1&limit=2")]:
        response = await _send(services, service, "GET", target)
        assert response.status_code == 200, (service, target, response.text[:300])


async def test_the_good_values_still_work(services: Services) -> None:
    """Not vacuous: the same routes answer valid values, and an erase is produced for one."""
    for target in ["/v1/customers/alice?journey=shop", "/v1/customers/alice/timeline?limit=1",
                   "/v1/journeys/shop/stages"]:
        response = await _send(services, "api", "GET", target)
        assert response.status_code == 200, (target, response.text[:300])
    page = (await _send(services, "api", "GET", "/v1/customers/alice/timeline?limit=1")).json()
    following = await _send(services, "api", "GET",
                            f"/v1/customers/alice/timeline?limit=1&cursor={page['next_cursor']}")
    assert following.status_code == 200 and following.json()["items"] != page["items"]
    before = await services.produced.count()
    erased = await _send(services, "api", "DELETE", "/v1/customers/someone-else")
    assert erased.status_code == 202, erased.text
    assert await services.produced.count() == before + 1


async def test_every_route_with_parameters_is_covered(services: Services) -> None:
    """A route with a path or query parameter added later must join the tables above."""
    covered_query = {route for _, route, _, _ in HOSTILE_QUERIES} | {route for _, _, route, _, _ in ACTION_QUERIES}
    for service in ("api", "ingest"):
        spec = (await _send(services, service, "GET", "/openapi.json")).json()
        for path, operations in spec["paths"].items():
            for method, operation in operations.items():
                where = {p["in"] for p in operation.get("parameters", [])}
                if "path" in where:
                    assert (method.upper(), path) in PATH_ROUTES, (service, method, path)
                if "query" in where:
                    example = path.replace("{customer_id}", "alice").replace("{journey}", "shop") \
                        .replace("{stage}", "intent").replace("{endpoint_id}", "wh_000000000000")
                    assert example in covered_query, (service, method, path)
