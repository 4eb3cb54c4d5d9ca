"""Phase "e2e": at a steady rate, the time from the HTTP 2xx to the event being visible in the
API's stage counts and in the customer's timeline (see steady.py for how probes are told apart).
"""

import asyncio
import random
from dataclasses import dataclass

import asyncpg
import orjson

from stageline_bench.config import BenchConfig
from stageline_bench.events import client_event, customer_id
from stageline_bench.http import HttpConnection, get_json
from stageline_bench.ingest import basic_auth
from stageline_bench.live import Live
from stageline_bench.offsets import applied, settle, watch_applied
from stageline_bench.progress import log
from stageline_bench.results import Results
from stageline_bench.steady import SteadyLoad, Visibility


@dataclass
class Baseline:
    journey: str
    total: int  # customers staged in the journey before the probes
    applied: int  # records applied before the steady load
    pool: list[str]


async def prepare(live: Live, pool_size: int, batch: int, name: str) -> Baseline:
    """Give every pool customer a stage, wait until applied, note the journey's total."""
    api = HttpConnection(live.api.base_url, {"Authorization": f"Bearer {live.read_key}"})
    ingest = HttpConnection(live.ingest.base_url, {"Authorization": basic_auth(live.write_key),
                                                   "Content-Type": "application/json"})
    try:
        journeys = await get_json(api, "/v1/journeys")
        journey = str(journeys["journeys"][0]["name"])
        _, before = await settle(live.database, live.topic, quiet_s=0.2)
        rng = random.Random(1)
        pool = [customer_id(f"{live.tag}{name}", n) for n in range(pool_size)]
        for start in range(0, pool_size, batch):
            events = [client_event(f"{c}-warm", c, rng, "Ad Clicked") for c in pool[start:start + batch]]
            status, body = await ingest.request("POST", "/v1/events", orjson.dumps({"batch": events}))
            if status != 202:
                raise RuntimeError(f"warm-up batch answered {status}: {body[:200]!r}")
        await watch_applied(live.database, live.topic, before + pool_size, "warm-up")
        counts = await get_json(api, f"/v1/journeys/{journey}/stages")
        conn = await asyncpg.connect(live.database)
        try:
            base_applied = await applied(conn, live.topic)
        finally:
            await conn.close()
        return Baseline(journey, int(counts["total"]), base_applied, pool)
    finally:
        await api.close()
        await ingest.close()


async def steady_with_probes(live: Live, config: BenchConfig, baseline: Baseline, seconds: float,
                             tag: str) -> tuple[SteadyLoad, Visibility]:
    load = SteadyLoad(live.ingest.base_url, basic_auth(live.write_key), config.rate, config.batch,
                      baseline.pool, tag)
    visibility = Visibility(live.api.base_url, live.read_key, baseline.journey, baseline.total, load)
    async with asyncio.TaskGroup() as group:
        group.create_task(load.run(seconds))
        group.create_task(visibility.run_until_complete(grace_s=60))
    return load, visibility


async def _run(live: Live, config: BenchConfig, results: Results) -> None:
    baseline = await prepare(live, 1_000 if config.quick else 10_000, config.batch, "w")
    log.info("e2e: %d events/s for %gs, one probe per request", config.rate, config.seconds)
    load, visibility = await steady_with_probes(live, config, baseline, config.seconds, f"{live.tag}e")
    counts, timeline = visibility.latencies()
    results.add("e2e.events_per_s", "End to end: load achieved", load.acked_events / load.elapsed,
                "events/s")
    results.add_latencies("e2e.counts", "End to end: 2xx → visible in stage counts", counts)
    results.add_latencies("e2e.timeline", "End to end: 2xx → visible in timeline", timeline)
    results.details["e2e"] = {"rate_asked": config.rate, "seconds": load.elapsed,
                              "probes": len(load.probes), "requests_failed": load.failed,
                              "journey": baseline.journey}
    log.info("e2e: counts p99 %.0f ms, timeline p99 %.0f ms over %d probes",
             results.value("e2e.counts.p99_ms"), results.value("e2e.timeline.p99_ms"), len(load.probes))


def run(live: Live, config: BenchConfig, results: Results) -> None:
    asyncio.run(_run(live, config, results))
