"""The checkpoint of one polled batch: its effects and its offsets, stored in Postgres together."""

import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from stageline_shared.contract.record import TouchpointFields
from stageline_shared.postgres_errors import refused_data
from stageline_shared.raw_connection import connection
from stageline_stager.batch import BatchOutcome, apply_touchpoints
from stageline_stager.dead_letter import Rejected, send_to_dead_letter
from stageline_stager.engine import JourneyEngine
from stageline_stager.repository.offsets import store_offsets
from stageline_stager.retry import Retrier
from stageline_stager.settings import StagerSettings

log = logging.getLogger(__name__)

Offsets = dict[tuple[str, int], int]
Decoded = tuple[Any, TouchpointFields]  # (the consumer record, its touchpoint)


class Checkpoint:
    """Commits polled batches for one stager: what to store, and in which order.

    `commit()`:
    1. Dead-letters the records that break the contract and waits for the broker's acks,
       retrying through a broker outage; if the stager stops first, nothing of the batch is
       stored (it is replayed, and dead-lettered again).
    2. In one transaction, applies the touchpoints and stores the batch's offsets (the next one
       to read per partition), checking that the stored ones are not behind what this stager
       last read or stored (OffsetsWentBack): a commit Postgres lost is never skipped over.
    3. If Postgres refuses the data of a record, applies the batch in halves instead, each in its
       own transaction that waits for its WAL flush, until every refused record stands alone;
       dead-letters those, and only then stores the offsets, in a transaction of their own.

    Any other database failure is raised: the caller drops the batch and seeks back to the
    stored offsets, since a crash may have taken commits Postgres had acknowledged.
    """

    def __init__(
        self,
        settings: StagerSettings,
        db: AsyncEngine,
        engines: Sequence[JourneyEngine],
        cluster_id: str,
        dead_letters: AIOKafkaProducer,
        retrier: Retrier,
    ) -> None:
        self._settings = settings
        self._db = db
        self._engines = list(engines)
        self._cluster_id = cluster_id
        self._dead_letters = dead_letters
        self._retrier = retrier

    async def commit(
        self, decoded: list[Decoded], rejected: list[Rejected], offsets: Offsets, expected: Offsets
    ) -> BatchOutcome | None:
        """Store the batch (steps 1-3); None when stopping before its dead letters were acked."""
        if rejected and not await self._retrier.until_done("dead-letter", lambda: send_to_dead_letter(
            self._dead_letters, self._settings.dlq_topic, rejected
        )):
            return None  # the batch will be replayed
        return await self._store(decoded, offsets, expected)

    async def _store_offsets(self, conn: AsyncConnection, offsets: Offsets, expected: Offsets) -> None:
        await store_offsets(await connection(conn), self._settings.group_id, self._cluster_id,
                            offsets, expected)

    async def _store(self, decoded: list[Decoded], offsets: Offsets, expected: Offsets) -> BatchOutcome:
        """Apply the batch with its offsets; if Postgres refuses a record for its data, apply the
        rest without it and dead-letter it, so one record cannot block its partition."""
        try:
            async with self._db.begin() as conn:
                outcome = await apply_touchpoints(conn, self._engines, [t for _, t in decoded])
                await self._store_offsets(conn, offsets, expected)
            return outcome
        except Exception as exc:
            state = refused_data(exc)
            if state is None:
                raise
            log.warning("Postgres refused the data of a batch of %d records (%s: %s); "
                        "applying it in parts to find the record", len(decoded), state, exc)
            outcome, refused = await self._apply_parts(decoded, state, exc)
        await send_to_dead_letter(self._dead_letters, self._settings.dlq_topic, refused)
        async with self._db.begin() as conn:  # after the refused records are safe in the dead letters
            await self._store_offsets(conn, offsets, expected)
        return outcome

    async def _apply_parts(
        self, decoded: list[Decoded], state: str, exc: Exception
    ) -> tuple[BatchOutcome, list[Rejected]]:
        """Records Postgres refused as a whole (`state`, `exc`): a lone one is refused itself,
        more are applied in halves, each in its own transaction, until every refused record
        stands alone; returns what the parts applied and the refused records. Parts applied
        before a crash are deduplicated when the batch is replayed."""
        if len(decoded) == 1:
            return BatchOutcome(), [Rejected(decoded[0][0], "unstorable",
                                             f"Postgres refused the record ({state}): {exc}"[:1000])]
        middle = len(decoded) // 2
        outcome, refused = await self._apply_storable(decoded[:middle])
        second, refused_second = await self._apply_storable(decoded[middle:])
        outcome.add(second)
        return outcome, [*refused, *refused_second]

    async def _apply_storable(self, decoded: list[Decoded]) -> tuple[BatchOutcome, list[Rejected]]:
        """Apply these records in one transaction, or in parts if Postgres refuses them.

        The parts carry no offsets, so a crash must not lose one after it was acknowledged:
        each waits for its WAL flush, whatever synchronous_commit the batches use."""
        try:
            async with self._db.begin() as conn:
                await conn.execute(text("SET LOCAL synchronous_commit = on"))
                outcome = await apply_touchpoints(conn, self._engines, [t for _, t in decoded])
            return outcome, []
        except Exception as exc:
            state = refused_data(exc)
            if state is None:
                raise
            return await self._apply_parts(decoded, state, exc)
