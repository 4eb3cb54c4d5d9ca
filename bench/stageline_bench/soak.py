"""`make soak`: a steady load for minutes; RSS drift per service and the largest consumer lag
(sampled as sampler.py says).
"""

import asyncio
from typing import Any

from stageline_bench.config import BenchConfig
from stageline_bench.e2e import prepare
from stageline_bench.ingest import basic_auth
from stageline_bench.live import Live, start_live, stop_live
from stageline_bench.progress import log
from stageline_bench.results import Results
from stageline_bench.sampler import Sampler, rss_by_kind
from stageline_bench.stack import BenchStack
from stageline_bench.steady import SteadyLoad, Visibility


async def _run(live: Live, config: BenchConfig, results: Results) -> None:
    idle = rss_by_kind(live)
    baseline = await prepare(live, 1_000 if config.quick else 10_000, config.batch, "w")
    log.info("soak: %d events/s for %gs", config.rate, config.seconds)
    load = SteadyLoad(live.ingest.base_url, basic_auth(live.write_key), config.rate, config.batch,
                      baseline.pool, f"{live.tag}k")
    visibility = Visibility(live.api.base_url, live.read_key, baseline.journey, baseline.total, load,
                            interval_s=0.05)
    sampler = Sampler(live, baseline.applied, load, config.seconds, "soak")
    async with asyncio.TaskGroup() as group:
        group.create_task(load.run(config.seconds))
        group.create_task(visibility.run_until_complete(grace_s=60))
        group.create_task(sampler.run())
    counts, timeline = visibility.latencies()
    results.add("soak.events_per_s", "Soak: load achieved", load.acked_events / load.elapsed, "events/s")
    results.add("soak.max_lag_events", "Soak: largest consumer lag", max(lag for _, lag in sampler.lags),
                "events")
    results.add("soak.drain_s", "Soak: lag back to 0 after the load stopped", sampler.drain_s, "s")
    memory: dict[str, Any] = {}
    for kind in idle:
        after_warmup, end, drift = sampler.drift(kind)
        results.add(f"soak.rss_drift_pct.{kind}", f"Soak: {kind} RSS drift", drift, "%")
        memory[kind] = {"idle_mb": idle[kind], "after_warmup_mb": after_warmup,
                        "end_mb": end, "samples": sampler.rss[kind]}
    results.add_latencies("soak.e2e.counts", "Soak: 2xx → visible in stage counts", counts)
    results.add_latencies("soak.e2e.timeline", "Soak: 2xx → visible in timeline", timeline)
    per_minute: dict[int, int] = {}
    for at, lag in sampler.lags:
        per_minute[int(at // 60)] = max(per_minute.get(int(at // 60), 0), lag)
    results.details["soak"] = {
        "rate_asked": config.rate, "seconds": load.elapsed, "requests_failed": load.failed,
        "warmup_s": sampler.warmup_s, "memory": memory, "max_lag_per_minute": per_minute,
    }
    log.info("soak: max lag %d events, drained in %.2fs, RSS drift %s", results.value("soak.max_lag_events"),
             sampler.drain_s, ", ".join(f"{k} {sampler.drift(k)[2]:+.1f}%" for k in sampler.rss))


def run(stack: BenchStack, config: BenchConfig, results: Results) -> None:
    live = start_live(stack, config, "soak")
    try:
        asyncio.run(_run(live, config, results))
    finally:
        stop_live(stack, config, "soak")
