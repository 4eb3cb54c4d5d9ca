"""The dispatcher's loops: relay the outbox into the feed, publish the feed to Kafka, deliver
webhooks, read the gauges. Each loop survives Postgres or the broker going away: it logs once,
waits and tries again, and nothing is marked done that was not."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from stageline_dispatcher import deliveries, metrics
from stageline_dispatcher.deliveries import Claimed, Result
from stageline_dispatcher.publisher import publish_once
from stageline_dispatcher.relay import relay_once
from stageline_dispatcher.schedule import decide, retry_after_s
from stageline_dispatcher.sender import make_session, send
from stageline_dispatcher.settings import DispatcherSettings
from stageline_shared import postgres_errors
from stageline_shared.kafka import make_producer
from stageline_shared.raw_connection import connection

log = logging.getLogger(__name__)

FLUSH_S = 0.01  # results are recorded in groups, at most this much later
LOG_EVERY_S = 30.0


class Dispatcher:
    def __init__(self, settings: DispatcherSettings, db: AsyncEngine) -> None:
        self.settings = settings
        self.db = db
        self.interval = settings.relay_interval_ms / 1000
        self.stopping = asyncio.Event()
        self.relayed = asyncio.Event()  # set when the relay made deliveries due: look at once
        self.results: list[tuple[Claimed, Result, str]] = []
        self.in_flight = 0

    def stop(self) -> None:
        self.stopping.set()

    async def run(self) -> None:
        loops = [self._guarded("relay", self._relay), self._guarded("delivery", self._deliver),
                 self._guarded("gauges", self._gauges)]
        if self.settings.publish_changes:
            loops.append(self._guarded("publisher", self._publish))
        tasks = [asyncio.create_task(loop) for loop in loops]
        await self.stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._flush()

    async def _guarded(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        """Run a loop, restarting it a second after an outage of Postgres or the broker (logged
        at most every LOG_EVERY_S while it lasts)."""
        logged = -LOG_EVERY_S
        while not self.stopping.is_set():
            try:
                await body()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - logged; the loop restarts
                if time.monotonic() - logged >= LOG_EVERY_S:
                    kind = "Postgres unavailable" if postgres_errors.unavailable(exc) else "failed"
                    log.warning("%s loop: %s (%r); retrying every second", name, kind, exc)
                    logged = time.monotonic()
                await self._sleep(1.0)
            else:
                return

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _relay(self) -> None:
        while not self.stopping.is_set():
            count = await relay_once(self.db, self.settings.relay_batch)
            if count:
                metrics.RELAYED.inc(count)
                self.relayed.set()
            else:
                await self._sleep(self.interval)

    async def _publish(self) -> None:
        producer = make_producer(self.settings.kafka_bootstrap_servers, "stageline-dispatcher",
                                 linger_ms=5, compression_type="zstd")
        await producer.start()
        try:
            while not self.stopping.is_set():
                count = await publish_once(self.db, producer, self.settings.changes_topic,
                                           self.settings.relay_batch)
                if count:
                    metrics.PUBLISHED.inc(count)
                else:
                    await self._sleep(self.interval)
        finally:
            await producer.stop()

    async def _gauges(self) -> None:
        """Read the gauges every 2 s; once a minute, delete deliveries past their retention."""
        pruned_at = 0.0
        while not self.stopping.is_set():
            async with self.db.connect() as conn:
                raw = await connection(conn)
                metrics.STATE.update(await raw.fetchrow(metrics.STATE_QUERY))
            if time.monotonic() - pruned_at >= 60:
                pruned_at = time.monotonic()
                while (pruned := await deliveries.prune(self.db, self.settings.webhook_retention_days)):
                    log.info("deleted %d webhook deliveries finished over %g days ago", pruned,
                             self.settings.webhook_retention_days)
            await self._sleep(2.0)

    async def _deliver(self) -> None:
        settings = self.settings
        lease_s = settings.webhook_timeout_s + settings.webhook_lease_margin_s
        async with make_session(settings.webhook_allow, settings.webhook_timeout_s,
                                settings.webhook_concurrency) as session:
            flusher = asyncio.create_task(self._flush_loop())
            tasks: set[asyncio.Task[None]] = set()
            try:
                while not self.stopping.is_set():
                    self.relayed.clear()
                    room = min(settings.webhook_claim, settings.webhook_concurrency - self.in_flight)
                    claimed = await deliveries.claim(self.db, room, lease_s) if room > 0 else []
                    for delivery in claimed:
                        self.in_flight += 1
                        task = asyncio.create_task(self._attempt(session, delivery))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    if len(claimed) < room or room <= 0:  # nothing more due, or no room: wait
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self.relayed.wait(), self.interval)
            finally:
                await asyncio.gather(*tasks, return_exceptions=True)
                flusher.cancel()
                await asyncio.gather(flusher, return_exceptions=True)

    async def _attempt(self, session: aiohttp.ClientSession, delivery: Claimed) -> None:
        try:
            attempt = await send(session, delivery, self.settings.webhook_allow)
            metrics.ATTEMPTS.labels(delivery.endpoint_id).inc()
            outcome = decide(attempt.status, delivery.attempt, self.settings.webhook_retry_schedule_s,
                             retry_after_s(attempt.retry_after, _now()))
            status = {"delivered": "delivered", "retry": "pending"}.get(outcome.verdict, "failed")
            self.results.append((delivery, Result(
                delivery.id, status, attempt.status, attempt.error, attempt.latency_ms,
                outcome.retry_in_s), outcome.verdict))
        finally:
            self.in_flight -= 1

    async def _flush_loop(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(FLUSH_S if not failing else 1.0)
            try:
                await self._flush()
                failing = False
            except Exception as exc:  # noqa: BLE001 - kept and retried; the lease covers it
                if not failing:
                    log.warning("cannot record webhook results (%r); retrying every second", exc)
                failing = True

    async def _flush(self) -> None:
        """Record the finished attempts; on failure they stay queued and are retried here (their
        leases outlast the attempt by webhook_lease_margin_s)."""
        if not self.results:
            return
        batch, self.results = self.results, []
        try:
            await deliveries.finish(self.db, [result for _, result, _ in batch])
        except Exception:
            self.results = batch + self.results
            raise
        delivered_any = False
        for delivery, result, verdict in batch:
            metrics.DELIVERIES.labels(delivery.endpoint_id, verdict).inc()
            delivered_any = delivered_any or verdict != "retry"
            if verdict in ("gone", "given_up"):
                reason = ("the receiver answered 410 Gone" if verdict == "gone" else
                          f"delivery failed {delivery.attempt} times, past the retry schedule "
                          f"(last: {result.code or result.error})")
                if await deliveries.disable(self.db, delivery.endpoint_id, reason):
                    metrics.DISABLED.labels("gone" if verdict == "gone" else "failing").inc()
                    log.warning("webhook endpoint %s disabled: %s", delivery.endpoint_id, reason)
        if delivered_any:
            self.relayed.set()  # the next change of those customers is due now


def _now() -> datetime:
    return datetime.now(UTC)
