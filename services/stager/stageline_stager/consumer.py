"""The consume loop: poll → decode → dead-letter → apply + store offsets in one transaction.

Offsets live in Postgres beside the effects they cover, and the consumer seeks to them whenever
partitions are assigned, so a crash at any point replays only what was not committed, and the
replayed records are deduplicated by event_id.

Rebalances: aiokafka hands out the new assignment (and can return records from it) before the
assignment callback runs, so records are processed only once the callback has positioned every
partition; anything returned earlier is dropped and fetched again from the stored offset. The
revocation callback waits for the batch in hand, so its offsets are in Postgres before the group
gives its partitions to another stager.
"""

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from stageline_shared.events import TouchpointFields
from stageline_shared.gc_tuning import collections_paused
from stageline_stager import metrics
from stageline_stager.dead_letter import Rejected, decode, refused_data, send_to_dead_letter
from stageline_stager.engine import JourneyEngine
from stageline_stager.repository import BatchOutcome, apply_touchpoints, read_offsets, store_offsets
from stageline_stager.settings import StagerSettings

log = logging.getLogger(__name__)

# Raised by statements sent on the raw asyncpg connection, so not wrapped by SQLAlchemy: a
# deadlock or serialization failure (class 40), a lost connection (08), a shutdown or a
# cancel (57).
_TRANSIENT_POSTGRES = (
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)

Batch = dict[TopicPartition, list[Any]]
Decoded = tuple[Any, TouchpointFields]  # (the consumer record, its touchpoint)


class SeekToStoredOffsets(ConsumerRebalanceListener):
    """On assignment, resume every partition from the offset stored in Postgres."""

    def __init__(self, loop: "StagerLoop") -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self._loop.hold_for_rebalance(revoked)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        await self._loop.seek_to_stored(assigned)


def _names(partitions: Sequence[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(partitions)) or "none"


class StagerLoop:
    """Owns the consumer and the dead-letter producer for one stager process."""

    def __init__(
        self,
        settings: StagerSettings,
        db: AsyncEngine,
        engines: Sequence[JourneyEngine],
        cluster_id: str,
    ) -> None:
        self.settings = settings
        self.db = db
        self.engines = list(engines)
        self.cluster_id = cluster_id
        self._stopping = asyncio.Event()
        self._next_offsets: dict[TopicPartition, int] = {}
        self._positioned = False  # every assigned partition sits at its stored offset
        self._batch_in_hand = asyncio.Lock()
        self._last_outcome = BatchOutcome()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.group_id,
            client_id="stageline-stager",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self.dead_letters = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers, acks="all",
            client_id="stageline-stager-dlq",
        )

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand, commit it and return (signal-safe)."""
        if not self._stopping.is_set():
            log.info("stop requested: finishing the batch in hand")
        self._stopping.set()

    async def hold_for_rebalance(self, revoked: Sequence[TopicPartition]) -> None:
        """Stop processing until the next assignment is positioned, and let the batch in hand
        finish first (bounded by rebalance_wait_s, so a database outage cannot stall the group)."""
        self._positioned = False
        try:
            async with asyncio.timeout(self.settings.rebalance_wait_s):
                await self._batch_in_hand.acquire()
            self._batch_in_hand.release()
        except TimeoutError:
            log.warning("rebalance: the batch in hand is still not stored after %.0fs; "
                        "its records may be applied again by the next owner (deduplicated)",
                        self.settings.rebalance_wait_s)
        if revoked:
            log.info("partitions revoked: %s", _names(revoked))

    async def seek_to_stored(self, assigned: Sequence[TopicPartition]) -> None:
        """Put every assigned partition at its offset stored in Postgres, or at the beginning of
        the partition when none is stored (whatever any client committed in Kafka)."""
        if not assigned:
            self._positioned = True
            return
        self.consumer.pause(*assigned)
        stored: dict[tuple[str, int], int] = {}

        async def read() -> None:
            async with self.db.connect() as conn:
                stored.update(await read_offsets(
                    conn, self.settings.group_id, self.cluster_id, sorted({tp.topic for tp in assigned})
                ))

        if not await self._retry("reading offsets", read):
            return
        unstored = [tp for tp in assigned if (tp.topic, tp.partition) not in stored]
        if unstored:
            await self.consumer.seek_to_beginning(*unstored)
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is not None:
                self.consumer.seek(tp, offset)
            self._next_offsets.pop(tp, None)
        self.consumer.resume(*assigned)
        self._positioned = True
        log.info(
            "partitions assigned: %s (resuming from %s)",
            _names(assigned),
            {f"{tp.partition}": stored.get((tp.topic, tp.partition), "start") for tp in assigned},
        )

    async def run(self) -> None:
        """Consume until stop() is called or the consumer is stopped."""
        await self.dead_letters.start()
        try:
            self.consumer.subscribe([self.settings.topic], listener=SeekToStoredOffsets(self))
            await self.consumer.start()
            log.info(
                "consuming %s as group %s (cluster %s)",
                self.settings.topic, self.settings.group_id, self.cluster_id,
            )
            await self._consume()
        finally:
            await self.consumer.stop()
            await self.dead_letters.stop()
            log.info("consumer stopped")

    async def _consume(self) -> None:
        while not self._stopping.is_set():
            try:
                batch = await self.consumer.getmany(
                    timeout_ms=self.settings.poll_ms, max_records=self.settings.max_batch
                )
            except ConsumerStoppedError:
                return
            except KafkaError as exc:
                log.warning("poll failed, retrying: %r", exc)
                await asyncio.sleep(1)
                continue
            if batch:
                async with self._batch_in_hand:
                    if not self._positioned:
                        log.debug("dropped %d records returned before the assignment was positioned",
                                  sum(len(r) for r in batch.values()))
                        continue
                    with collections_paused():
                        await self._process(batch)
            self._report_lag()

    async def _process(self, batch: Batch) -> None:
        started = time.perf_counter()
        decoded_records: list[Decoded] = []
        rejected: list[Rejected] = []
        offsets: dict[tuple[str, int], int] = {}
        for tp, records in batch.items():
            for record in records:
                decoded = decode(record)
                if isinstance(decoded, Rejected):
                    rejected.append(decoded)
                else:
                    decoded_records.append((record, decoded))
            offsets[(tp.topic, tp.partition)] = records[-1].offset + 1
        if rejected and not await self._retry("dead-letter", lambda: send_to_dead_letter(
            self.dead_letters, self.settings.dlq_topic, rejected
        )):
            return  # stopping before the dead letters were acked: the batch will be replayed
        if not await self._retry("database", lambda: self._store(decoded_records, offsets)):
            return
        outcome = self._last_outcome
        for (topic, partition), offset in offsets.items():
            self._next_offsets[TopicPartition(topic, partition)] = offset
        applied, duplicates, transitions = outcome.applied, outcome.duplicates, outcome.transitions
        metrics.EVENTS_APPLIED.inc(applied)
        metrics.DUPLICATES_SKIPPED.inc(duplicates)
        metrics.MERGES.inc(outcome.merges)
        metrics.SUPPRESSED.inc(outcome.suppressed)
        metrics.ERASED.inc(outcome.erased)
        metrics.LINK_CONFLICTS.inc(len(outcome.conflicts))
        for conflict in outcome.conflicts:
            log.warning(
                "identity conflict: event %s links an id already merged into another customer; "
                "first link wins, the id stays where it is", conflict.event_id,
            )
        moves = Counter((journey, t.from_stage or "none", t.to_stage) for journey, t in transitions)
        for labels, count in moves.items():
            metrics.TRANSITIONS.labels(*labels).inc(count)
        count = sum(len(r) for r in batch.values())
        metrics.BATCH_RECORDS.observe(count)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        log.debug(
            "batch: %d records, %d applied, %d duplicates, %d dead-lettered, %d transitions",
            count, applied, duplicates, len(rejected), len(transitions),
        )

    async def _commit(
        self, touchpoints: list[TouchpointFields], offsets: dict[tuple[str, int], int]
    ) -> None:
        async with self.db.begin() as conn:
            self._last_outcome = await apply_touchpoints(conn, self.engines, touchpoints)
            await store_offsets(conn, self.settings.group_id, self.cluster_id, offsets)

    async def _store(self, decoded: list[Decoded], offsets: dict[tuple[str, int], int]) -> None:
        """Apply the batch with its offsets; if Postgres refuses a record for its data, apply the
        rest without it and dead-letter it, so one record cannot block its partition."""
        try:
            await self._commit([touchpoint for _, touchpoint in decoded], offsets)
            return
        except Exception as exc:
            state = refused_data(exc)
            if state is None:
                raise
            log.warning("Postgres refused the data of a batch of %d records (%s: %s); "
                        "applying it in parts to find the record", len(decoded), state, exc)
            outcome = BatchOutcome()
            refused = await self._apply_parts(decoded, outcome, state, exc)
        await send_to_dead_letter(self.dead_letters, self.settings.dlq_topic, refused)
        async with self.db.begin() as conn:  # after the refused records are safe in the dead letters
            await store_offsets(conn, self.settings.group_id, self.cluster_id, offsets)
        self._last_outcome = outcome

    async def _apply_parts(
        self, decoded: list[Decoded], outcome: BatchOutcome, state: str, exc: Exception
    ) -> list[Rejected]:
        """Records Postgres refused as a whole (`state`, `exc`): a lone one is refused itself,
        more are applied in halves, each in its own transaction, until every refused record
        stands alone; returns those. Parts applied before a crash are deduplicated when the
        batch is replayed."""
        if len(decoded) == 1:
            return [Rejected(decoded[0][0], "unstorable",
                             f"Postgres refused the record ({state}): {exc}"[:1000])]
        middle = len(decoded) // 2
        return [*await self._apply_storable(decoded[:middle], outcome),
                *await self._apply_storable(decoded[middle:], outcome)]

    async def _apply_storable(self, decoded: list[Decoded], outcome: BatchOutcome) -> list[Rejected]:
        """Apply these records in one transaction, or in parts if Postgres refuses them."""
        try:
            async with self.db.begin() as conn:
                outcome.add(await apply_touchpoints(conn, self.engines, [t for _, t in decoded]))
            return []
        except Exception as exc:
            state = refused_data(exc)
            if state is None:
                raise
            return await self._apply_parts(decoded, outcome, state, exc)

    async def _retry(self, what: str, attempt: Callable[[], Awaitable[None]]) -> bool:
        """Run attempt() until it succeeds (True) or the loop is stopping (False).

        A passing outage must neither skip records nor crash-loop the process.
        """
        while True:
            try:
                await attempt()
                return True
            except (OperationalError, DBAPIError, KafkaError, OSError, *_TRANSIENT_POSTGRES) as exc:
                reason = type(getattr(exc, "orig", exc)).__name__
                metrics.DB_RETRIES.labels(reason).inc()
                if self._stopping.is_set():
                    log.warning("%s failed while stopping; batch left for replay: %r", what, exc)
                    return False
                log.warning("%s failed (%s), retrying in %.1fs", what, reason, self.settings.db_retry_s)
                await asyncio.sleep(self.settings.db_retry_s)

    def _report_lag(self) -> None:
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            next_offset = self._next_offsets.get(tp)
            if highwater is not None and next_offset is not None:
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(
                    max(0, highwater - next_offset)
                )
