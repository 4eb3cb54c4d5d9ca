"""The consume loop: poll → decode → dead-letter → apply + store offsets in one transaction.

Offsets live in Postgres beside the effects they cover, and the consumer seeks to them whenever
partitions are assigned, so a crash at any point replays only what was not committed, and the
replayed records are deduplicated by event_id.

After any database failure the batch in hand is dropped and every assigned partition is put back
at its stored offset before anything more is applied: a Postgres crash can lose commits it had
acknowledged (synchronous_commit off), and the stored offsets are then behind this stager's
position. Each batch's transaction also checks that the stored offsets are not behind what this
stager last read or stored (OffsetsWentBack otherwise), so a crash the stager never saw (its
connections replaced silently by the pool) cannot make it store an offset past records that were
never applied.

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
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from stageline_shared.contract.record import TouchpointFields
from stageline_shared.gc_tuning import collections_paused
from stageline_stager import metrics
from stageline_stager.dead_letter import Rejected, decode, refused_data, send_to_dead_letter
from stageline_stager.engine import JourneyEngine
from stageline_stager.repository import (
    BatchOutcome,
    OffsetsWentBack,
    apply_touchpoints,
    read_offsets,
    store_offsets,
)
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

_DATABASE_FAILURES = (OperationalError, DBAPIError, OSError, *_TRANSIENT_POSTGRES)

Batch = dict[TopicPartition, list[Any]]
Offsets = dict[tuple[str, int], int]
Decoded = tuple[Any, TouchpointFields]  # (the consumer record, its touchpoint)


class SeekToStoredOffsets(ConsumerRebalanceListener):
    """On assignment, resume every partition from the offset stored in Postgres."""

    def __init__(self, loop: "StagerLoop") -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self._loop.hold_for_rebalance(revoked)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        await self._loop.seek_to_stored(assigned)


def _or_start(offset: int | None) -> int | str:
    return "start" if offset is None else offset


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
        # Per partition, the offset this stager last read from Postgres or stored there: the next
        # one to apply (None: none stored, read from the beginning). Stored offsets are never
        # expected behind it (OffsetsWentBack).
        self._positions: dict[TopicPartition, int | None] = {}
        self._positioned = False  # every assigned partition sits at its stored offset
        self._batch_in_hand = asyncio.Lock()
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
            for tp in revoked:
                metrics.forget_partition(tp.topic, tp.partition)  # its next owner reports it now
            log.info("partitions revoked: %s", _names(revoked))

    async def seek_to_stored(self, assigned: Sequence[TopicPartition]) -> None:
        """Put every assigned partition at its offset stored in Postgres, or at the beginning of
        the partition when none is stored (whatever any client committed in Kafka)."""
        if not assigned:
            self._positioned = True
            return
        self.consumer.pause(*assigned)
        if not await self._reposition(assigned):
            return
        self.consumer.resume(*assigned)
        self._positioned = True
        log.info("partitions assigned: %s (resuming from %s)",
                 _names(assigned), self._resume_points(assigned))

    def _resume_points(self, partitions: Sequence[TopicPartition]) -> dict[str, int | str]:
        return {f"{tp.partition}": _or_start(self._positions.get(tp)) for tp in sorted(partitions)}

    async def _reposition(self, partitions: Sequence[TopicPartition]) -> bool:
        """Seek each partition to its stored offset (the beginning when none is stored), reading
        them until Postgres answers; False when asked to stop first."""
        stored: Offsets = {}

        async def read() -> None:
            async with self.db.connect() as conn:
                stored.update(await read_offsets(
                    conn, self.settings.group_id, self.cluster_id, sorted({tp.topic for tp in partitions})
                ))

        if not await self._retry("reading offsets", read):
            return False
        # A rebalance may have taken some while Postgres was being waited for (seeking one of
        # those would raise); their next owner positions them.
        owned = self.consumer.assignment()
        partitions = [tp for tp in partitions if tp in owned]
        unstored = [tp for tp in partitions if (tp.topic, tp.partition) not in stored]
        if unstored:
            await self.consumer.seek_to_beginning(*unstored)
        for tp in partitions:
            offset = stored.get((tp.topic, tp.partition))
            if offset is not None:
                self.consumer.seek(tp, offset)  # also drops the records fetched ahead of it
            self._positions[tp] = offset
        return True

    async def _recover(self, exc: BaseException) -> None:
        """After a failed batch: drop it, wait, and seek every assigned partition back to its
        stored offset, so whatever a crash took from Postgres is applied again."""
        reason = type(getattr(exc, "orig", exc)).__name__
        metrics.DB_RETRIES.labels(reason).inc()
        if self._stopping.is_set():
            log.warning("batch failed while stopping (%s); left for replay: %r", reason, exc)
            return
        if isinstance(exc, OffsetsWentBack):
            log.warning("%s; re-reading the stored offsets and applying from there", exc)
        else:
            log.warning("batch failed (%s: %s); re-reading the stored offsets in %.1fs and applying "
                        "from there", reason, exc, self.settings.db_retry_s)
            await asyncio.sleep(self.settings.db_retry_s)
        assigned = sorted(self.consumer.assignment())
        if assigned and await self._reposition(assigned):
            log.info("resuming from the stored offsets %s", self._resume_points(assigned))

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
        offsets: Offsets = {}
        for tp, records in batch.items():
            metrics.LAG_SECONDS.pending(tp.topic, tp.partition, records[0].timestamp)
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
        expected = {(tp.topic, tp.partition): position for tp in batch
                    if (position := self._positions.get(tp)) is not None}
        try:
            outcome = await self._store(decoded_records, offsets, expected)
        except (*_DATABASE_FAILURES, OffsetsWentBack) as exc:
            await self._recover(exc)
            return
        for tp, records in batch.items():
            self._positions[tp] = offsets[(tp.topic, tp.partition)]
            highwater = self.consumer.highwater(tp)
            # The next record is no older than the last one applied: its time bounds the lag.
            caught_up = highwater is not None and highwater <= offsets[(tp.topic, tp.partition)]
            metrics.LAG_SECONDS.pending(tp.topic, tp.partition, None if caught_up else records[-1].timestamp)
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

    async def _store_offsets(self, conn: Any, offsets: Offsets, expected: Offsets) -> None:
        await store_offsets(conn, self.settings.group_id, self.cluster_id, offsets, expected)

    async def _store(self, decoded: list[Decoded], offsets: Offsets, expected: Offsets) -> BatchOutcome:
        """Apply the batch with its offsets; if Postgres refuses a record for its data, apply the
        rest without it and dead-letter it, so one record cannot block its partition."""
        try:
            async with self.db.begin() as conn:
                outcome = await apply_touchpoints(conn, self.engines, [t for _, t in decoded])
                await self._store_offsets(conn, offsets, expected)
            return outcome
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
            await self._store_offsets(conn, offsets, expected)
        return outcome

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
        """Apply these records in one transaction, or in parts if Postgres refuses them.

        The parts carry no offsets, so a crash must not lose one after it was acknowledged:
        each waits for its WAL flush, whatever synchronous_commit the batches use."""
        try:
            async with self.db.begin() as conn:
                await conn.execute(text("SET LOCAL synchronous_commit = on"))
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
            except (*_DATABASE_FAILURES, KafkaError) as exc:
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
            next_offset = self._positions.get(tp)
            if highwater is not None and next_offset is not None:
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(
                    max(0, highwater - next_offset)
                )
