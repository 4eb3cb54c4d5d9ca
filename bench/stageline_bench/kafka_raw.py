"""Producing keyed records straight to the broker with create_batch/send_batch.

This is the producer's ceiling on this machine (the reference for ingest), and how the stager's
topic is preloaded. Records go to the partition the default partitioner (murmur2 of the key)
would pick, by ingest's own `partition_of`.
"""

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer

from stageline_ingest.batcher import partition_of
from stageline_shared.kafka import ensure_topics

Record = tuple[bytes, bytes]


def by_partition(records: Iterable[Record], partitions: int) -> dict[int, list[Record]]:
    ids = list(range(partitions))
    result: dict[int, list[Record]] = defaultdict(list)
    for key, value in records:
        result[partition_of(key, ids)].append((key, value))
    return result


async def _send_partition(
    producer: AIOKafkaProducer, topic: str, partition: int, records: list[Record]
) -> None:
    # send_batch waits while the partition already has a batch queued: natural backpressure.
    futures = []
    batch = producer.create_batch()
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is None:
            futures.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)
    if batch.record_count():
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*futures)


async def produce(bootstrap: str, topic: str, records: dict[int, list[Record]], partitions: int,
                  compression: str) -> float:
    """Send every record with acks=all, batches compressed with `compression` (or "none");
    returns the seconds from first append to last ack."""
    await ensure_topics(bootstrap, {topic: partitions})
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=0, max_batch_size=1024 * 1024,
        request_timeout_ms=120_000, client_id="stageline-bench",
        compression_type=None if compression == "none" else compression,
    )
    await producer.start()
    try:
        started = time.perf_counter()
        await asyncio.gather(*(
            _send_partition(producer, topic, partition, items) for partition, items in records.items()
        ))
        return time.perf_counter() - started
    finally:
        await producer.stop()
