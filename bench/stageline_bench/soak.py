"""`make soak`: a steady load for minutes; RSS drift per service and the largest consumer lag.

Lag is the events acknowledged by ingest and not yet applied by the stager (stored offsets),
sampled twice a second; after the load stops, the time until it is back to 0 is the drain time.
RSS drift compares each service at the end of the load with itself after the warm-up (the first
10% of the run, at most a minute): start-up growth is not drift.
"""

import asyncio
import contextlib
import time
from typing import Any

import asyncpg

from stageline_bench.config import BenchConfig
from stageline_bench.e2e import Baseline, prepare
from stageline_bench.ingest import basic_auth
from stageline_bench.live import Live, start_live, stop_live
from stageline_bench.offsets import applied
from stageline_bench.progress import log
from stageline_bench.results import Results
from stageline_bench.stack import BenchStack
from stageline_bench.steady import SteadyLoad, Visibility


def rss_by_kind(live: Live) -> dict[str, float]:
    """RSS per kind of service, summed over its processes (all the stagers together)."""
    total: dict[str, float] = {}
    for service in live.services:
        total[service.kind] = total.get(service.kind, 0.0) + service.rss_mb()
    return total


class Sampler:
    def __init__(self, live: Live, baseline: Baseline, load: SteadyLoad, seconds: float) -> None:
        self.live, self.baseline, self.load = live, baseline, load
        self.warmup_s = min(60.0, seconds * 0.1)
        self.lags: list[tuple[float, int]] = []
        self.rss: dict[str, list[tuple[float, float]]] = {s.kind: [] for s in live.services}
        self.drain_s = 0.0

    def _sample_rss(self, at: float) -> None:
        for kind, mb in rss_by_kind(self.live).items():
            self.rss[kind].append((at, mb))

    async def run(self) -> None:
        conn = await asyncpg.connect(self.live.database)
        try:
            started = last_rss = last_log = time.monotonic()
            self._sample_rss(0.0)
            while not self.load.finished:
                now = time.monotonic()
                lag = self.load.acked_events - (await applied(conn, self.live.topic) - self.baseline.applied)
                self.lags.append((now - started, max(0, lag)))
                if now - last_rss >= 10:
                    last_rss = now
                    self._sample_rss(now - started)
                if now - last_log >= 30:
                    last_log = now
                    log.info("  soak %4.0fs: %d events acked, lag %d, RSS %s", now - started,
                             self.load.acked_events, lag,
                             ", ".join(f"{k} {v[-1][1]:.0f} MB" for k, v in self.rss.items()))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await self.load.done.wait()  # wakes at once when the load stops
            stopped = time.monotonic()
            self._sample_rss(stopped - started)
            while await applied(conn, self.live.topic) - self.baseline.applied < self.load.acked_events:
                if time.monotonic() - stopped > 300:
                    raise RuntimeError("soak: lag not back to 0 within 300s of the load stopping")
                await asyncio.sleep(0.05)
            self.drain_s = time.monotonic() - stopped
        finally:
            await conn.close()

    def drift(self, kind: str) -> tuple[float, float, float]:
        """(RSS after warm-up, RSS at the end, drift %) of one service."""
        samples = self.rss[kind]
        after_warmup = next((mb for at, mb in samples if at >= self.warmup_s), samples[-1][1])
        end = samples[-1][1]
        return after_warmup, end, (end - after_warmup) / after_warmup * 100


async def _run(live: Live, config: BenchConfig, results: Results) -> None:
    idle = rss_by_kind(live)
    baseline = await prepare(live, 1_000 if config.quick else 10_000, config.batch, "w")
    log.info("soak: %d events/s for %gs", config.rate, config.seconds)
    load = SteadyLoad(live.ingest.base_url, basic_auth(live.write_key), config.rate, config.batch,
                      baseline.pool, f"{live.tag}k")
    visibility = Visibility(live.api.base_url, live.read_key, baseline.journey, baseline.total, load,
                            interval_s=0.05)
    sampler = Sampler(live, baseline, load, config.seconds)
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
