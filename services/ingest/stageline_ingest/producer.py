"""Producing touchpoints to Kafka with acks=all, bounded in time."""

import asyncio
import logging
import time
from collections.abc import Sequence

from aiokafka.errors import KafkaError

from stageline_ingest.batcher import SharedBatcher
from stageline_ingest.metrics import PRODUCE_SECONDS
from stageline_ingest.settings import IngestSettings
from stageline_shared.contract.record import WireRecord
from stageline_shared.kafka import make_producer

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """The broker did not acknowledge every event in time."""


class TouchpointProducer:
    """Keyed by customer_id so one customer's events stay in one partition, in order."""

    def __init__(self, settings: IngestSettings) -> None:
        self.topic = settings.topic
        self.timeout_s = settings.produce_timeout_s
        self._linger_s = settings.linger_ms / 1000
        self._producer = make_producer(
            settings.kafka_bootstrap_servers,
            "stageline-ingest",
            linger_ms=settings.linger_ms,
            compression_type=None if settings.compression == "none" else settings.compression,
            request_timeout_ms=int(settings.produce_timeout_s * 1000),
            max_batch_size=1024 * 1024,
        )

    async def start(self) -> None:
        await self._producer.start()
        self._batcher = SharedBatcher(self._producer, self.topic, self._linger_s)
        await self._batcher.start()

    async def stop(self) -> None:
        await self._batcher.stop()
        await self._producer.stop()

    async def produce(self, records: Sequence[WireRecord]) -> None:
        """Return only once the broker holds every record; else raise BrokerUnavailable."""
        started = time.perf_counter()
        deliveries = self._batcher.append(records)
        if deliveries:
            # wait() never cancels what it waits on: a request that gives up leaves alone the
            # batches other requests share (and costs less per request than gather and shield).
            done, pending = await asyncio.wait(deliveries, timeout=self.timeout_s,
                                               return_when=asyncio.FIRST_EXCEPTION)
            for delivery in done:
                error = delivery.exception()
                if isinstance(error, KafkaError):
                    raise BrokerUnavailable(f"the broker refused the events: {error}") from None
                if error is not None:
                    raise error
            if pending:
                raise BrokerUnavailable(
                    f"the broker did not acknowledge the events within {self.timeout_s:g}s")
        PRODUCE_SECONDS.observe(time.perf_counter() - started)
