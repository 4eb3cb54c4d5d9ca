"""Helpers for the integration tests: service processes, event generation, the reference model."""

import asyncio
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from stageline_devstack.ports import free_port
from stageline_devstack.processes import ServiceProcess
from stageline_shared.database import async_url, make_engine
from stageline_shared.keys import KINDS, KeyKind, create_key, hash_key, revoke_key

EVENT_NAMES = [
    "Ad Clicked", "Product Viewed", "Review Read", "Product Added", "Order Completed",
    "Ticket Resolved", "Review Written", "Newsletter Opened",  # the last matches no rule
]
STAGES = ["awareness", "interest", "consideration", "intent", "purchase", "retention", "loyalty",
          "advocacy"]
# The rules of tests/integration/journeys.yaml: (event, stage, min_count).
RULES = [("Ad Clicked", "awareness", 1), ("Product Viewed", "interest", 1),
         ("Review Read", "consideration", 1), ("Product Added", "intent", 1),
         ("Order Completed", "purchase", 1), ("Ticket Resolved", "retention", 1),
         ("Order Completed", "loyalty", 2), ("Review Written", "advocacy", 1)]


def plain_url(url: str) -> str:
    return async_url(url).replace("postgresql+asyncpg://", "postgresql://", 1)


def metric(text: str, name: str, **labels: str) -> float:
    """A sample's value in Prometheus text, summed over the samples that carry `labels` (0 when
    absent)."""
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


@dataclass
class Stack:
    """The three services as real processes, pointed at this test's topic and database."""

    bootstrap: str
    database_url: str
    topic: str
    journeys_file: Path
    log_dir: Path
    keys: dict[str, str] = field(default_factory=dict)  # kind -> secret, made by the fixture
    processes: list[ServiceProcess] = field(default_factory=list)

    @property
    def write_key(self) -> str:
        return self.keys["write"]

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An HTTP client that reads with the test's read key (writes pass the write key)."""
        return httpx.AsyncClient(
            timeout=30, headers={"Authorization": f"Bearer {self.keys['read']}"}, **kwargs
        )

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "DATABASE_URL": self.database_url,
            "STAGELINE_TOPIC": self.topic, "STAGELINE_DLQ_TOPIC": f"{self.topic}.dlq",
            "STAGELINE_TOPIC_PARTITIONS": "4", "STAGELINE_JOURNEYS_FILE": str(self.journeys_file),
            "STAGELINE_GROUP_ID": f"stager-{self.topic}", "PYTHONUNBUFFERED": "1", **extra,
        }

    def _start(self, name: str, module: str, port_var: str, **extra: str) -> ServiceProcess:
        port = free_port()
        process = ServiceProcess(
            name, module, self.env(**{port_var: str(port)}, **extra),
            f"http://127.0.0.1:{port}/healthz",
            self.log_dir / f"{name}-{len(self.processes)}.log",
        )
        self.processes.append(process)
        return process.start()

    def start_ingest(self, **extra: str) -> str:
        return self._start("ingest", "stageline_ingest", "STAGELINE_INGEST_PORT", **extra).base_url

    def start_api(self, **extra: str) -> str:
        return self._start("api", "stageline_api", "STAGELINE_API_PORT", **extra).base_url

    def start_stager(self, **extra: str) -> ServiceProcess:
        return self._start("stager", "stageline_stager", "STAGELINE_STAGER_PORT", **extra)

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def log_tails(self, lines: int = 40) -> list[tuple[str, str]]:
        """(service-N, the last lines of its log) for every process started."""
        tails = []
        for number, process in enumerate(self.processes):
            if process.log_file is not None and process.log_file.exists():
                text = process.log_file.read_text(errors="replace").splitlines()[-lines:]
                tails.append((f"{process.name}-{number}", "\n".join(text)))
        return tails


async def create_keys(database_url: str) -> dict[str, str]:
    """A write (source "tests"), a read and an admin key in the test's database."""
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            return {kind: (await create_key(conn, kind, source="tests" if kind == "write" else None))[1]
                    for kind in KINDS}
    finally:
        await engine.dispose()


async def new_key(database_url: str, kind: KeyKind, revoked: bool = False) -> str:
    """The secret of another key of `kind` (write keys: source "tests"), revoked if asked."""
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            key, secret = await create_key(conn, kind, source="tests" if kind == "write" else None)
            if revoked:
                await revoke_key(conn, key.id)
            return secret
    finally:
        await engine.dispose()


async def revoke_secret(database_url: str, secret: str) -> None:
    """Revoke the key whose secret this is, straight in the database (as the CLI does)."""
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        done = await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE key_hash = $1 "
                                  "AND revoked_at IS NULL", hash_key(secret))
        assert done == "UPDATE 1", done
    finally:
        await conn.close()


def make_events(customers: int, events: int, seed: int) -> list[dict[str, Any]]:
    """Unique events for `customers` customers; whole-second times so ties happen."""
    rng = random.Random(seed)
    base = datetime(2026, 10, 1, tzinfo=UTC)
    result = []
    for index in range(events):
        customer = f"cust-{index % customers:04d}" if index < customers else \
            f"cust-{rng.randrange(customers):04d}"
        result.append({
            "event_id": f"ev-{seed}-{index:06d}-{uuid.uuid4().hex[:6]}",
            "customer_id": customer,
            "event": rng.choice(EVENT_NAMES),
            "channel": rng.choice(["web", "email", "store", "ads", "support"]),
            "occurred_at": (base + timedelta(seconds=rng.randrange(3600))).isoformat(),
            "properties": {"n": index},
        })
    return result


def with_resends(events: list[dict[str, Any]], fraction: float, seed: int) -> list[dict[str, Any]]:
    """The events plus `fraction` of them sent again, all shuffled."""
    rng = random.Random(seed)
    sent = events + rng.sample(events, int(len(events) * fraction))
    rng.shuffle(sent)
    return sent


def _stage_of_touchpoint(event: str, count_so_far: dict[str, int]) -> int | None:
    ranks = [STAGES.index(stage) for name, stage, need in RULES
             if name == event and count_so_far[name] >= need]
    return max(ranks, default=None)


def expected_stages(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Recompute every customer's stage in both journeys straight from the raw events."""
    unique = {e["event_id"]: e for e in events}
    by_customer: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in unique.values():
        by_customer[event["customer_id"]].append(event)
    result: dict[str, dict[str, str]] = {"shop": {}, "shop-latest": {}}
    for customer, items in by_customer.items():
        items.sort(key=lambda e: (datetime.fromisoformat(e["occurred_at"]), e["event_id"]))
        counts: dict[str, int] = defaultdict(int)
        forward: int | None = None
        latest: int | None = None
        for event in items:
            counts[event["event"]] += 1
            rank = _stage_of_touchpoint(event["event"], counts)
            if rank is not None:
                latest = rank
                forward = rank if forward is None else max(forward, rank)
        if forward is not None:
            result["shop"][customer] = STAGES[forward]
        if latest is not None:
            result["shop-latest"][customer] = STAGES[latest]
    return result


def expected_counts(stages: dict[str, str]) -> dict[str, int]:
    counts = dict.fromkeys(STAGES, 0)
    for stage in stages.values():
        counts[stage] += 1
    return counts


async def post_events(
    client: httpx.AsyncClient, ingest: str, events: list[dict[str, Any]], write_key: str,
    batch: int = 100, concurrency: int = 4,
) -> int:
    """POST in batches with the write key; every response must be 202 accepting the whole batch."""
    gate = asyncio.Semaphore(concurrency)

    async def send(chunk: list[dict[str, Any]]) -> int:
        async with gate:
            response = await client.post(f"{ingest}/v1/events", json={"batch": chunk},
                                         auth=(write_key, ""))
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["accepted"] == len(chunk) and body["rejected"] == [], body
        assert body["event_ids"] == [e["event_id"] for e in chunk]
        return int(body["accepted"])

    chunks = [events[i:i + batch] for i in range(0, len(events), batch)]
    return sum(await asyncio.gather(*(send(chunk) for chunk in chunks)))


async def applied_offsets(database_url: str, topic: str) -> int:
    """Records the stagers have committed (sum of stored next offsets) for a topic."""
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        value = await conn.fetchval(
            "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE topic = $1", topic
        )
        return int(value)
    finally:
        await conn.close()


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], timeout_s: float, what: str, interval_s: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(interval_s)


async def wait_applied(database_url: str, topic: str, records: int, timeout_s: float = 120) -> None:
    async def done() -> bool:
        applied = await applied_offsets(database_url, topic)
        assert applied <= records, f"more offsets stored ({applied}) than records ({records})"
        return applied == records

    await wait_for(done, timeout_s, f"{records} records to be applied")


async def api_counts(client: httpx.AsyncClient, api: str, journey: str) -> tuple[dict[str, int], int]:
    response = await client.get(f"{api}/v1/journeys/{journey}/stages")
    assert response.status_code == 200, response.text
    body = response.json()
    return {s["stage"]: s["customers"] for s in body["stages"]}, int(body["total"])


async def assert_counts_match(client: httpx.AsyncClient, api: str, events: list[dict[str, Any]]) -> None:
    """The API's counts equal the recomputation from the raw events, in both journeys."""
    expected = expected_stages(events)
    for journey, stages in expected.items():
        counts, total = await api_counts(client, api, journey)
        assert counts == expected_counts(stages), journey
        assert total == len(stages)


async def assert_timelines_match(
    client: httpx.AsyncClient, api: str, events: list[dict[str, Any]]
) -> None:
    """Every customer's timeline lists its deduplicated events in time order, nothing else."""
    unique = {e["event_id"]: e for e in events}
    by_customer: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in unique.values():
        by_customer[event["customer_id"]].append(event)
    gate = asyncio.Semaphore(8)

    async def check(customer: str, items: list[dict[str, Any]]) -> None:
        items.sort(key=lambda e: (datetime.fromisoformat(e["occurred_at"]), e["event_id"]))
        async with gate:
            response = await client.get(f"{api}/v1/customers/{customer}/timeline",
                                        params={"limit": 500})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["next_cursor"] is None
        touchpoints = [i for i in body["items"] if i["type"] == "touchpoint"]
        assert [t["event_id"] for t in touchpoints] == [e["event_id"] for e in items], customer
        assert [t["event"] for t in touchpoints] == [e["event"] for e in items]
        assert [datetime.fromisoformat(t["occurred_at"]) for t in touchpoints] == \
            [datetime.fromisoformat(e["occurred_at"]) for e in items]

    await asyncio.gather(*(check(c, items) for c, items in by_customer.items()))


async def topic_values(bootstrap: str, topic: str) -> list[bytes]:
    """Every record value on `topic` now, read from the start of each partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        await consumer.topics()  # loads the topic's partitions
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        values: list[bytes] = []
        async with asyncio.timeout(30):
            for tp, end in ends.items():
                while await consumer.position(tp) < end:
                    for batch in (await consumer.getmany(tp, timeout_ms=500)).values():
                        values.extend(record.value for record in batch if record.value is not None)
        return values
    finally:
        await consumer.stop()
