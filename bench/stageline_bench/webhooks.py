"""Phase "webhooks": how fast the dispatcher delivers, and how long from an event's 2xx to its
webhook, each against a reference measured in the same run.

- raw HTTP: aiohttp (the dispatcher's client) POSTing a ~500-byte body to the bench's receiver
  at the dispatcher's concurrency, no database: the most any dispatcher could deliver here.
- throughput: a database holding `webhook_deliveries` changes already in the feed, one endpoint,
  customers enough that ordering never waits; one dispatcher from start to the last delivery.
- latency (on the live stack): the steady load at --rate with one probe per request (a new
  customer: one stage change per journey); the receiver notes each probe's first webhook.
"""

import asyncio
import subprocess
import sys
import time

import aiohttp
import asyncpg
import orjson

from stageline_bench.config import BenchConfig
from stageline_bench.cpu import CpuMeter
from stageline_bench.e2e import prepare
from stageline_bench.http import HttpConnection, get_json
from stageline_bench.ingest import basic_auth
from stageline_bench.live import Live
from stageline_bench.progress import log
from stageline_bench.results import Results
from stageline_bench.stack import BenchStack, plain_url
from stageline_bench.steady import SteadyLoad
from stageline_devstack.ports import free_port

PROBE_STAGE = "awareness"  # where a probe's "Ad Clicked" puts a new customer, in every journey
CONCURRENCY = 256  # the dispatcher's default STAGELINE_WEBHOOK_CONCURRENCY
_BODY = orjson.dumps({"type": "customer.stage_changed", "timestamp": "2026-12-03T10:00:00Z", "data": {
    "v": 1, "position": 1, "kind": "stage", "customer_id": "c-0000001", "journey": "ecommerce",
    "from_stage": "interest", "to_stage": "intent", "event_id": "0193e7a4-0000-7000-8000-000000000000",
    "occurred_at": "2026-12-03T10:00:00Z", "recorded_at": "2026-12-03T10:00:00Z"}})


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.process = subprocess.Popen([sys.executable, "-m", "stageline_bench.receiver", str(self.port)])

    async def wait(self) -> None:
        for _ in range(200):
            try:
                await stats(self)
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError("the bench's webhook receiver did not start")

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


async def stats(receiver: Receiver) -> dict:
    connection = HttpConnection(f"http://127.0.0.1:{receiver.port}", {})
    try:
        return await get_json(connection, "/stats")
    finally:
        await connection.close()


async def raw_http(receiver: Receiver, seconds: float) -> float:
    """Requests/s of aiohttp at CONCURRENCY against the receiver, nothing else in the way."""
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        done = 0
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                async with session.post(receiver.url, data=_BODY,
                                        headers={"Content-Type": "application/json"}) as response:
                    await response.read()
                done += 1
        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return done / (time.monotonic() - started)


_SEED = """
    WITH c AS (
        INSERT INTO stage_changes (position, kind, journey, customer_id, from_stage, to_stage, event_id,
                                   occurred_at)
        SELECT g, 'stage', 'ecommerce', 'bench-c-' || lpad((g % $1)::text, 7, '0'), 'interest', 'intent',
               'bench-e-' || g, now()
        FROM generate_series(1, $2::bigint) AS g
        RETURNING id, position, customer_id
    )
    INSERT INTO webhook_deliveries (endpoint_id, change_id, position, customer_id)
    SELECT 'wh_000000bench', id, position, customer_id FROM c
"""


async def _seed(url: str, receiver_url: str, deliveries: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("INSERT INTO webhook_endpoints (id, url, secret) VALUES "
                           "('wh_000000bench', $1, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')", receiver_url)
        await conn.execute(_SEED, max(1, deliveries // 2), deliveries)
        await conn.execute("UPDATE feed_head SET position = $1", deliveries)
        await conn.execute("VACUUM ANALYZE webhook_deliveries")
    finally:
        await conn.close()


async def _relayed(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        waiting = "SELECT EXISTS (SELECT 1 FROM stage_changes WHERE position IS NULL)"
        while await conn.fetchval(waiting):  # noqa: ASYNC110 - another process's database
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def _pending(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"))
    finally:
        await conn.close()


def throughput(stack: BenchStack, config: BenchConfig, results: Results) -> None:
    receiver = Receiver()
    try:
        asyncio.run(receiver.wait())
        seconds = 2.0 if config.quick else 10.0
        raw = asyncio.run(raw_http(receiver, seconds))
        results.add("webhooks.raw_http.requests_per_s", "Raw HTTP: aiohttp → the bench's receiver",
                    raw, "requests/s")
        log.info("webhooks: raw HTTP %.0f requests/s (aiohttp, %d in flight)", raw, CONCURRENCY)
        url = stack.database("webhooks")
        deliveries = config.webhook_deliveries
        asyncio.run(_seed(plain_url(url), receiver.url, deliveries))
        log.info("webhooks: %d deliveries waiting; starting %d dispatcher(s)", deliveries, config.dispatchers)
        dispatchers = [stack.start_service("dispatcher", "webhooks", url, stack.topic("webhooks"),
                                           env={"STAGELINE_PUBLISH_CHANGES": "false"})
                       for _ in range(config.dispatchers)]
        # Timed from the first reading: the dispatchers have been delivering since before their
        # health checks answered.
        meter = CpuMeter(dispatchers, stack.infrastructure_cpu_s).start()
        started, first = time.monotonic(), asyncio.run(_pending(plain_url(url)))
        while (left := asyncio.run(_pending(plain_url(url)))) > 0:
            log.info("webhooks: %d deliveries pending", left)
            time.sleep(0.5 if config.quick else 2.0)
        elapsed = time.monotonic() - started
        rate = first / elapsed
        deliveries = first
        results.add("webhooks.dispatcher.deliveries_per_s", "Dispatcher: deliveries to a local receiver",
                    rate, "deliveries/s")
        results.details["webhooks"] = {"deliveries": deliveries, "seconds": elapsed,
                                       "dispatchers": config.dispatchers,
                                       "cpu": meter.read(deliveries), "raw_http_concurrency": CONCURRENCY}
        log.info("webhooks: %d deliveries in %.1fs = %.0f/s (%.0f%% of raw HTTP)", deliveries, elapsed,
                 rate, 100 * rate / raw)
    finally:
        stack.stop_services("webhooks")
        receiver.stop()


async def _latency(live: Live, config: BenchConfig, results: Results) -> None:
    receiver = Receiver()
    try:
        await receiver.wait()
        baseline = await prepare(live, 1_000 if config.quick else 10_000, config.batch, "h")
        # After the warm-up, relayed: its pool customers' first stages are no webhooks of the
        # measurement.
        await _relayed(live.database)
        admin = HttpConnection(live.api.base_url, {"Authorization": f"Bearer {live.admin_key}",
                                                   "Content-Type": "application/json"})
        try:
            # Listening for the probes' stage, as a CRM listens for the stages it acts on: the
            # webhooks are the probes' (and the pool's few moves into it), not every change.
            status, _ = await admin.request("POST", "/v1/admin/webhooks", orjson.dumps(
                {"url": receiver.url, "to_stages": [PROBE_STAGE]}))
        finally:
            await admin.close()
        if status != 201:
            raise RuntimeError(f"registering the receiver answered {status}")
        seconds = 10.0 if config.quick else config.seconds
        log.info("webhooks: %d events/s for %gs, one probe per request, 2xx → webhook", config.rate, seconds)
        load = SteadyLoad(live.ingest.base_url, basic_auth(live.write_key), config.rate, config.batch,
                          baseline.pool, f"{live.tag}h")
        load.prebuild(seconds)
        await load.run(seconds)
        deadline = time.monotonic() + 60
        acked = {p.customer: p.acked_at for p in load.probes}
        while True:
            seen = (await stats(receiver))["first_seen"]
            if set(acked) <= set(seen) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        latencies = [seen[c] - at for c, at in acked.items() if c in seen]
        received = int((await stats(receiver))["requests"])
        results.add("webhooks.e2e.events_per_s", "2xx → webhook: load achieved", load.kept_rate, "events/s")
        results.add_latencies("webhooks.e2e", "2xx → webhook received", latencies)
        results.details["webhooks_e2e"] = {"probes": len(acked), "received": len(latencies),
                                           "webhooks": received, "to_stages": [PROBE_STAGE],
                                           "rate_asked": config.rate, "seconds": seconds}
        log.info("webhooks: %d of %d probes received; p99 %.0f ms", len(latencies), len(acked),
                 results.value("webhooks.e2e.p99_ms") or 0)
    finally:
        receiver.stop()


def latency(live: Live, config: BenchConfig, results: Results) -> None:
    asyncio.run(_latency(live, config, results))
