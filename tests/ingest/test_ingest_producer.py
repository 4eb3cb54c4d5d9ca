"""Ingest's producer against the real broker: requests share batches, and one that gives up
(its client went away) leaves the batch the others wait on alone."""

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer

from stageline_devstack.broker import Broker
from stageline_ingest.producer import TouchpointProducer
from stageline_ingest.settings import IngestSettings
from stageline_shared.contract.record import WireRecord
from stageline_shared.kafka import ensure_topics

pytestmark = pytest.mark.integration


def record(customer: str, event_id: str) -> WireRecord:
    return WireRecord(customer.encode(), b'{"event_id": "%s"}' % event_id.encode(), event_id, False)


async def read_values(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            while len(values) < expected:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    values.extend(r.value for r in batch if r.value is not None)
    finally:
        await consumer.stop()
    return values


async def test_a_request_that_gives_up_leaves_the_shared_batch_alone(broker: Broker, topic: str) -> None:
    # A 200 ms linger keeps both requests' records in one open batch while the first is cancelled.
    settings = IngestSettings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers, topic=topic,
                              topic_partitions=1, linger_ms=200)
    await ensure_topics(broker.bootstrap_servers, {topic: 1})
    producer = TouchpointProducer(settings)
    await producer.start()
    try:
        gives_up = asyncio.create_task(producer.produce([record("c-1", "e-1")]))
        waits = asyncio.create_task(producer.produce([record("c-2", "e-2")]))
        await asyncio.sleep(0.05)
        gives_up.cancel()
        await waits  # acknowledged: the cancelled request did not cancel the batch
        assert gives_up.cancelled()
    finally:
        await producer.stop()
    values = await read_values(broker.bootstrap_servers, topic, 2)
    assert sorted(values) == [b'{"event_id": "e-1"}', b'{"event_id": "e-2"}']


async def test_a_batch_opened_while_the_flusher_sends_is_sent_too(broker: Broker, topic: str) -> None:
    """One request fills a batch and opens the next: the flusher sends the full one, then must
    come back for the open one, though nothing else arrives to wake it."""
    settings = IngestSettings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers, topic=topic,
                              topic_partitions=1, produce_timeout_s=5)
    await ensure_topics(broker.bootstrap_servers, {topic: 1})
    producer = TouchpointProducer(settings)
    await producer.start()
    padding = b"x" * 1000
    records = [WireRecord(b"c-1", b'{"event_id": "e-%d", "pad": "%s"}' % (n, padding), f"e-{n}", False)
               for n in range(1200)]  # 1.2 MB: more than one 1 MB batch
    try:
        await producer.produce(records)
        await producer.produce(records[:1])  # and the partition's next request is not stuck either
    finally:
        await producer.stop()
    values = await read_values(broker.bootstrap_servers, topic, 1201)
    assert sorted(values) == sorted([r.value for r in records] + [records[0].value])
