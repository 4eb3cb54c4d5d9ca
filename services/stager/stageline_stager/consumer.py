"""The consume loop: poll → decode → checkpoint (dead letters, effects and offsets) → metrics.

The loop owns the consumer and the dead-letter producer; rebalance.py keeps each partition at its
stored offset, checkpoint.py stores a batch with its offsets in one transaction.

After any database failure the batch in hand is dropped and every assigned partition is put back
at its stored offset before anything more is applied: a Postgres crash can lose commits it had
acknowledged (synchronous_commit off), and the stored offsets are then behind this stager's
position. Each batch's transaction also checks that the stored offsets are not behind what this
stager last read or stored (OffsetsWentBack otherwise), so a crash the stager never saw (its
connections replaced silently by the pool) cannot make it store an offset past records that were
never applied.
"""

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine

from stageline_shared.gc_tuning import collections_paused
from stageline_shared.kafka import make_producer
from stageline_shared.postgres_errors import transient
from stageline_stager import metrics
from stageline_stager.batch import BatchOutcome
from stageline_stager.checkpoint import Checkpoint, Decoded, Offsets
from stageline_stager.dead_letter import Rejected, decode
from stageline_stager.engine import JourneyEngine
from stageline_stager.rebalance import SeekToStoredOffsets
from stageline_stager.repository.offsets import OffsetsWentBack
from stageline_stager.retry import Retrier, reason
from stageline_stager.settings import StagerSettings

log = logging.getLogger(__name__)

Batch = dict[TopicPartition, list[Any]]


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
        self.cluster_id = cluster_id
        self._stopping = asyncio.Event()
        self._batch_in_hand = asyncio.Lock()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.group_id,
            client_id="stageline-stager",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self.dead_letters = make_producer(settings.kafka_bootstrap_servers, "stageline-stager-dlq")
        retrier = Retrier(self._stopping, settings.db_retry_s)
        self.partitions = SeekToStoredOffsets(
            self.consumer, db, settings, cluster_id, retrier, self._batch_in_hand)
        self.checkpoint = Checkpoint(settings, db, engines, cluster_id, self.dead_letters, retrier)

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand, commit it and return (signal-safe)."""
        if not self._stopping.is_set():
            log.info("stop requested: finishing the batch in hand")
        self._stopping.set()

    async def run(self) -> None:
        """Consume until stop() is called or the consumer is stopped."""
        await self.dead_letters.start()
        try:
            self.consumer.subscribe([self.settings.topic], listener=self.partitions)
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
                    if not self.partitions.positioned:
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
        positions = self.partitions.positions
        expected = {(tp.topic, tp.partition): position for tp in batch
                    if (position := positions.get(tp)) is not None}
        try:
            outcome = await self.checkpoint.commit(decoded_records, rejected, offsets, expected)
        except Exception as exc:
            if not (transient(exc) or isinstance(exc, OffsetsWentBack)):
                raise
            await self._recover(exc)
            return
        if outcome is None:
            return  # stopping before the dead letters were acked: the batch will be replayed
        for tp, records in batch.items():
            positions[tp] = offsets[(tp.topic, tp.partition)]
            highwater = self.consumer.highwater(tp)
            # The next record is no older than the last one applied: its time bounds the lag.
            caught_up = highwater is not None and highwater <= offsets[(tp.topic, tp.partition)]
            metrics.LAG_SECONDS.pending(tp.topic, tp.partition, None if caught_up else records[-1].timestamp)
        count = sum(len(r) for r in batch.values())
        _count(outcome, count)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        log.debug(
            "batch: %d records, %d applied, %d duplicates, %d dead-lettered, %d transitions",
            count, outcome.applied, outcome.duplicates, len(rejected), len(outcome.transitions),
        )

    async def _recover(self, exc: BaseException) -> None:
        """After a failed batch: drop it, wait, and seek every assigned partition back to its
        stored offset, so whatever a crash took from Postgres is applied again."""
        metrics.DB_RETRIES.labels(reason(exc)).inc()
        if self._stopping.is_set():
            log.warning("batch failed while stopping (%s); left for replay: %r", reason(exc), exc)
            return
        if isinstance(exc, OffsetsWentBack):
            log.warning("%s; re-reading the stored offsets and applying from there", exc)
        else:
            log.warning("batch failed (%s: %s); re-reading the stored offsets in %.1fs and applying "
                        "from there", reason(exc), exc, self.settings.db_retry_s)
            await asyncio.sleep(self.settings.db_retry_s)
        assigned = sorted(self.consumer.assignment())
        if assigned and await self.partitions.reposition(assigned):
            log.info("resuming from the stored offsets %s", self.partitions.resume_points(assigned))

    def _report_lag(self) -> None:
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            next_offset = self.partitions.positions.get(tp)
            if highwater is not None and next_offset is not None:
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(
                    max(0, highwater - next_offset)
                )


def _count(outcome: BatchOutcome, records: int) -> None:
    """Count what a stored batch did."""
    metrics.EVENTS_APPLIED.inc(outcome.applied)
    metrics.DUPLICATES_SKIPPED.inc(outcome.duplicates)
    metrics.MERGES.inc(outcome.merges)
    metrics.SUPPRESSED.inc(outcome.suppressed)
    metrics.ERASED.inc(outcome.erased)
    metrics.LINK_CONFLICTS.inc(len(outcome.conflicts))
    for conflict in outcome.conflicts:
        log.warning(
            "identity conflict: event %s links an id already merged into another customer; "
            "first link wins, the id stays where it is", conflict.event_id,
        )
    moves = Counter((journey, t.from_stage or "none", t.to_stage) for journey, t in outcome.transitions)
    for labels, count in moves.items():
        metrics.TRANSITIONS.labels(*labels).inc(count)
    metrics.BATCH_RECORDS.observe(records)
