"""Sampling a steady load: the consumer lag twice a second, each service's RSS every 10 s.

Lag is the events acknowledged by ingest and not yet applied by the stager (stored offsets);
after the load stops, the time until it is back to 0 is the drain time. RSS drift compares each
service at the end of the load with itself after the warm-up (the first 10% of the run, at most a
minute): start-up growth is not drift.
"""

import asyncio
import contextlib
import time

import asyncpg

from stageline_bench.live import Live
from stageline_bench.offsets import applied
from stageline_bench.progress import log
from stageline_bench.steady import SteadyLoad


def rss_by_kind(live: Live) -> dict[str, float]:
    """RSS per kind of service, summed over its processes (all the stagers together)."""
    total: dict[str, float] = {}
    for service in live.services:
        total[service.kind] = total.get(service.kind, 0.0) + service.rss_mb()
    return total


class Sampler:
    def __init__(self, live: Live, applied_before: int, load: SteadyLoad, seconds: float, what: str) -> None:
        self.live, self.applied_before, self.load, self.what = live, applied_before, load, what
        self.warmup_s = min(60.0, seconds * 0.1)
        self.log_every_s = min(30.0, max(5.0, seconds / 3))
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
                lag = self.load.acked_events - (await applied(conn, self.live.topic) - self.applied_before)
                self.lags.append((now - started, max(0, lag)))
                if now - last_rss >= 10:
                    last_rss = now
                    self._sample_rss(now - started)
                if now - last_log >= self.log_every_s:
                    last_log = now
                    log.info("  %s %4.0fs: %d events acked, lag %d, RSS %s", self.what, now - started,
                             self.load.acked_events, lag,
                             ", ".join(f"{k} {v[-1][1]:.0f} MB" for k, v in self.rss.items()))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await self.load.done.wait()  # wakes at once when the load stops
            stopped = time.monotonic()
            self._sample_rss(stopped - started)
            while await applied(conn, self.live.topic) - self.applied_before < self.load.acked_events:
                if time.monotonic() - stopped > 300:
                    raise RuntimeError(f"{self.what}: lag not back to 0 within 300s of the load stopping")
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
