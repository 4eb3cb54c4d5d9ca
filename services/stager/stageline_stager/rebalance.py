"""Where each assigned partition stands: held during a rebalance, seeked to its stored offset.

Offsets live in Postgres beside the effects they cover, and the consumer seeks to them whenever
partitions are assigned (and after any failed batch), so a crash at any point replays only what
was not committed.

aiokafka hands out the new assignment (and can return records from it) before the assignment
callback runs, so records are processed only once the callback has positioned every partition
(`positioned`); anything returned earlier is dropped and fetched again from the stored offset.
The revocation callback waits for the batch in hand, so its offsets are in Postgres before the
group gives its partitions to another stager.
"""

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from stageline_shared.raw_connection import connection
from stageline_stager import metrics
from stageline_stager.repository.offsets import read_offsets
from stageline_stager.retry import Retrier
from stageline_stager.settings import StagerSettings

log = logging.getLogger(__name__)

Offsets = dict[tuple[str, int], int]


def _or_start(offset: int | None) -> int | str:
    return "start" if offset is None else offset


def names(partitions: Sequence[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(partitions)) or "none"


class SeekToStoredOffsets(ConsumerRebalanceListener):
    """On assignment, resume every partition from the offset stored in Postgres."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        db: AsyncEngine,
        settings: StagerSettings,
        cluster_id: str,
        retrier: Retrier,
        batch_in_hand: asyncio.Lock,
    ) -> None:
        self._consumer = consumer
        self._db = db
        self._settings = settings
        self._cluster_id = cluster_id
        self._retrier = retrier
        self._batch_in_hand = batch_in_hand
        # Per partition, the offset this stager last read from Postgres or stored there: the next
        # one to apply (None: none stored, read from the beginning). Stored offsets are never
        # expected behind it (OffsetsWentBack).
        self.positions: dict[TopicPartition, int | None] = {}
        self.positioned = False  # every assigned partition sits at its stored offset

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self.hold(revoked)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        await self.seek_to_stored(assigned)

    async def hold(self, revoked: Sequence[TopicPartition]) -> None:
        """Stop processing until the next assignment is positioned, and let the batch in hand
        finish first (bounded by rebalance_wait_s, so a database outage cannot stall the group)."""
        self.positioned = False
        try:
            async with asyncio.timeout(self._settings.rebalance_wait_s):
                await self._batch_in_hand.acquire()
            self._batch_in_hand.release()
        except TimeoutError:
            log.warning("rebalance: the batch in hand is still not stored after %.0fs; "
                        "its records may be applied again by the next owner (deduplicated)",
                        self._settings.rebalance_wait_s)
        if revoked:
            for tp in revoked:
                metrics.forget_partition(tp.topic, tp.partition)  # its next owner reports it now
            log.info("partitions revoked: %s", names(revoked))

    async def seek_to_stored(self, assigned: Sequence[TopicPartition]) -> None:
        """Put every assigned partition at its offset stored in Postgres, or at the beginning of
        the partition when none is stored (whatever any client committed in Kafka)."""
        if not assigned:
            self.positioned = True
            return
        self._consumer.pause(*assigned)
        if not await self.reposition(assigned):
            return
        self._consumer.resume(*assigned)
        self.positioned = True
        log.info("partitions assigned: %s (resuming from %s)",
                 names(assigned), self.resume_points(assigned))

    def resume_points(self, partitions: Sequence[TopicPartition]) -> dict[str, int | str]:
        return {f"{tp.partition}": _or_start(self.positions.get(tp)) for tp in sorted(partitions)}

    async def reposition(self, partitions: Sequence[TopicPartition]) -> bool:
        """Seek each partition to its stored offset (the beginning when none is stored), reading
        them until Postgres answers; False when asked to stop first."""
        stored: Offsets = {}

        async def read() -> None:
            async with self._db.connect() as conn:
                stored.update(await read_offsets(
                    await connection(conn), self._settings.group_id, self._cluster_id,
                    sorted({tp.topic for tp in partitions}),
                ))

        if not await self._retrier.until_done("reading offsets", read):
            return False
        # A rebalance may have taken some while Postgres was being waited for (seeking one of
        # those would raise); their next owner positions them.
        owned = self._consumer.assignment()
        partitions = [tp for tp in partitions if tp in owned]
        unstored = [tp for tp in partitions if (tp.topic, tp.partition) not in stored]
        if unstored:
            await self._consumer.seek_to_beginning(*unstored)
        for tp in partitions:
            offset = stored.get((tp.topic, tp.partition))
            if offset is not None:
                self._consumer.seek(tp, offset)  # also drops the records fetched ahead of it
            self.positions[tp] = offset
        return True
