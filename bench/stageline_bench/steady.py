"""A steady load with probes, and the pollers that see each probe appear in the API.

Open loop: one request of `batch` events every batch/rate seconds, whatever the answers. Each
request carries one probe: an "Ad Clicked" for a customer never seen before. Background events
go to a pool of customers that already have a stage, so a journey's total grows only by the
probes: the n-th acknowledged probe is visible in the counts once the total has grown by n. In
the timeline, a probe is visible once its customer's timeline answers 200.
"""

import asyncio
import contextlib
import math
import random
import time
from dataclasses import dataclass

import orjson

from stageline_bench.events import client_event
from stageline_bench.http import HttpConnection


@dataclass
class Probe:
    customer: str
    acked_at: float = 0.0
    in_counts_at: float | None = None
    in_timeline_at: float | None = None


class SteadyLoad:
    def __init__(
        self, ingest_url: str, auth: str, rate: float, batch: int, pool: list[str], tag: str,
        connections: int = 16,
    ) -> None:
        self.ingest_url, self.auth, self.rate, self.batch = ingest_url, auth, rate, batch
        self.pool, self.tag, self.connections = pool, tag, connections
        self.rng = random.Random(tag)
        self.acked_events = 0
        self.failed = 0
        self.elapsed = 0.0  # from the first request to the last answer
        self.sending_s = 0.0  # from the first request to one interval after the last was sent
        self.probes: list[Probe] = []  # in the order their requests were acknowledged
        self.finished = False
        self.done = asyncio.Event()
        self._bodies: list[bytes] = []  # made by prebuild(), else each when it is sent

    @property
    def kept_rate(self) -> float:
        """Events/s acknowledged over the sending time: the asked rate when every request went
        out on time and was acknowledged."""
        return self.acked_events / self.sending_s if self.sending_s else 0.0

    async def run(self, seconds: float) -> None:
        idle: asyncio.Queue[HttpConnection] = asyncio.Queue()
        connections = [
            HttpConnection(self.ingest_url, {"Authorization": self.auth,
                                             "Content-Type": "application/json"})
            for _ in range(self.connections)
        ]
        for connection in connections:
            idle.put_nowait(connection)
        interval = self.batch / self.rate
        started = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()
        number = 0
        try:
            while number * interval < seconds:
                delay = started + number * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                connection = await idle.get()  # all busy: the rate falls behind, and shows it
                task = asyncio.create_task(self._send(number, connection, idle))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                number += 1
            self.sending_s = time.monotonic() - started + interval
            await asyncio.gather(*tasks)
        finally:
            self.elapsed = time.monotonic() - started
            self.finished = True
            self.done.set()
            for connection in connections:
                await connection.close()

    def prebuild(self, seconds: float) -> None:
        """Build every request body of a `seconds` run now, so that making them while the load
        runs does not take CPU from the services (~2.5 µs per event)."""
        requests = math.ceil(seconds * self.rate / self.batch)
        self._bodies = [self._body(number) for number in range(requests)]

    def _body(self, number: int) -> bytes:
        events = [client_event(f"{self.tag}-{number:07d}-{i:03d}", self.rng.choice(self.pool), self.rng)
                  for i in range(self.batch - 1)]
        events.append(client_event(f"{self.tag}-{number:07d}-probe", self._probe_customer(number),
                                   self.rng, "Ad Clicked"))
        return orjson.dumps({"batch": events})

    def _probe_customer(self, number: int) -> str:
        return f"{self.tag}-probe-{number:07d}"

    async def _send(self, number: int, connection: HttpConnection,
                    idle: "asyncio.Queue[HttpConnection]") -> None:
        probe = Probe(self._probe_customer(number))
        body = self._bodies[number] if number < len(self._bodies) else self._body(number)
        try:
            status, _ = await connection.request("POST", "/v1/events", body)
        except (OSError, asyncio.IncompleteReadError):
            self.failed += 1
            return
        finally:
            idle.put_nowait(connection)
        if status != 202:
            self.failed += 1
            return
        probe.acked_at = time.monotonic()
        self.acked_events += self.batch
        self.probes.append(probe)


class Visibility:
    """Polls the API for the probes of a SteadyLoad until every acknowledged one is visible."""

    def __init__(self, api_url: str, read_key: str, journey: str, base_total: int,
                 load: SteadyLoad, interval_s: float = 0.01) -> None:
        self.api_url, self.journey, self.base_total, self.load = api_url, journey, base_total, load
        self.headers = {"Authorization": f"Bearer {read_key}"}
        self.interval_s = interval_s
        self.stop = asyncio.Event()
        self.all_seen = asyncio.Event()
        self._in_counts = 0
        self._in_timeline = 0

    @property
    def complete(self) -> bool:
        probes = len(self.load.probes)
        return self.load.finished and self._in_counts >= probes and self._in_timeline >= probes

    async def poll_counts(self) -> None:
        connection = HttpConnection(self.api_url, self.headers)
        try:
            while not self.stop.is_set():
                status, body = await connection.request("GET", f"/v1/journeys/{self.journey}/stages")
                now = time.monotonic()
                if status != 200:
                    raise RuntimeError(f"stage counts answered {status}: {body[:200]!r}")
                visible = min(int(orjson.loads(body)["total"]) - self.base_total, len(self.load.probes))
                for probe in self.load.probes[self._in_counts:visible]:
                    probe.in_counts_at = now
                self._in_counts = max(self._in_counts, visible)
                self._check_complete()
                await asyncio.sleep(self.interval_s)
        finally:
            await connection.close()

    async def poll_timelines(self) -> None:
        connection = HttpConnection(self.api_url, self.headers)
        try:
            while not self.stop.is_set():
                if self._in_timeline >= len(self.load.probes):
                    self._check_complete()
                    await asyncio.sleep(self.interval_s)
                    continue
                probe = self.load.probes[self._in_timeline]
                status, body = await connection.request(
                    "GET", f"/v1/customers/{probe.customer}/timeline?limit=1")
                if status == 200:
                    probe.in_timeline_at = time.monotonic()
                    self._in_timeline += 1
                    self._check_complete()
                elif status == 404:
                    await asyncio.sleep(self.interval_s)
                else:
                    raise RuntimeError(f"timeline answered {status}: {body[:200]!r}")
        finally:
            await connection.close()

    async def run_until_complete(self, grace_s: float) -> None:
        """Poll while the load runs and until all probes are seen, or grace_s after it ends."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.poll_counts())
            group.create_task(self.poll_timelines())
            group.create_task(self._stop_when_complete(grace_s))

    def _check_complete(self) -> None:
        if self.complete:
            self.all_seen.set()

    async def _stop_when_complete(self, grace_s: float) -> None:
        await self.load.done.wait()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                await self.all_seen.wait()
        self.stop.set()

    def latencies(self) -> tuple[list[float], list[float]]:
        """Seconds from each probe's 2xx to visible in counts, and in the timeline."""
        probes = self.load.probes
        counts = [max(0.0, p.in_counts_at - p.acked_at) for p in probes if p.in_counts_at is not None]
        timeline = [max(0.0, p.in_timeline_at - p.acked_at) for p in probes
                    if p.in_timeline_at is not None]
        if len(counts) < len(probes) or len(timeline) < len(probes):
            raise RuntimeError(f"of {len(probes)} probes, {len(counts)} became visible in the "
                               f"counts and {len(timeline)} in the timeline")
        return counts, timeline
