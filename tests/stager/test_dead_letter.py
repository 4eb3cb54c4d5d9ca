"""Records that are not touchpoints go to the dead-letter topic; the stager keeps going."""

import asyncio
import json
import uuid

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.fixtures.events import make_events, post_events
from tests.fixtures.expected import assert_counts_match
from tests.fixtures.polling import wait_applied
from tests.fixtures.stack import Stack, plain_url

pytestmark = pytest.mark.integration

BAD_RECORDS: list[tuple[bytes | None, str]] = [
    (b"\xff\xfe\x00 not json at all", "undecodable"),
    (b'{"customer_id": "c-1", "event": "Product Viewed"', "undecodable"),
    (b"[1, 2, 3]", "contract"),
    (b'{"event_id": "x", "customer_id": 7, "event": "Product Viewed"}', "contract"),
    (orjson.dumps({"event_id": "y", "customer_id": "c-1", "event": "Ad Clicked",
                   "occurred_at": "yesterday", "received_at": "2026-01-01T00:00:00Z"}), "contract"),
    (None, "undecodable"),
    # Postgres text and jsonb cannot hold U+0000: such a record would block its partition.
    (orjson.dumps({"event_id": "z", "customer_id": "c-1", "event": "Ad Clicked",
                   "occurred_at": "2026-01-01T00:00:00Z", "received_at": "2026-01-01T00:00:00Z",
                   "properties": {"note": "a\x00b"}}), "contract"),
    (orjson.dumps({"event_id": "n\x00", "customer_id": "c-1", "event": "Ad Clicked",
                   "occurred_at": "2026-01-01T00:00:00Z", "received_at": "2026-01-01T00:00:00Z"}),
     "contract"),
    # Nested past what ingest accepts, and past what pydantic's JSON parser follows.
    (b'{"event_id": "deep", "customer_id": "c-1", "event": "Ad Clicked", "occurred_at": '
     b'"2026-01-01T00:00:00Z", "received_at": "2026-01-01T00:00:00Z", "properties": {"p": '
     + b"[" * 600 + b"]" * 600 + b"}}", "undecodable"),
    (orjson.dumps({"event_id": "deep-33", "customer_id": "c-1", "event": "Ad Clicked",
                   "occurred_at": "2026-01-01T00:00:00Z", "received_at": "2026-01-01T00:00:00Z",
                   "properties": {"p": orjson.loads(b"[" * 32 + b"1" + b"]" * 32)}}),  # 33 levels
     "contract"),
]
# Not JSON Ingest would write, yet a touchpoint: stored, with NaN as null (jsonb has no NaN).
ODD_BUT_VALID = (b'{"event_id": "odd-1", "customer_id": "c-odd", "event": "Page Scrolled", '
                 b'"occurred_at": "2026-01-01T00:00:00Z", "received_at": "2026-01-01T00:00:00Z", '
                 b'"properties": {"ratio": NaN, "big": 1180591620717411303424}}')


async def read_topic(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes | None, dict[str, bytes]]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"reader-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    records: list[tuple[bytes | None, dict[str, bytes]]] = []
    try:
        async with asyncio.timeout(30):
            while len(records) < expected:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend((r.value, dict(r.headers)) for r in batch)
        await asyncio.sleep(0.5)  # nothing more than expected may arrive
        for batch in (await consumer.getmany(timeout_ms=500)).values():
            records.extend((r.value, dict(r.headers)) for r in batch)
    finally:
        await consumer.stop()
    return records


async def test_bad_records_are_dead_lettered_and_counts_unaffected(stack: Stack) -> None:
    events = make_events(customers=50, events=400, seed=11)
    ingest = stack.start_ingest()
    stager = stack.start_stager()
    api = stack.start_api()
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    async with stack.client() as client:
        try:
            await post_events(client, ingest, events[:200], stack.write_key)
            for value, _ in BAD_RECORDS:
                await producer.send_and_wait(stack.topic, value, key=b"c-1")
            await producer.send_and_wait(stack.topic, ODD_BUT_VALID, key=b"c-odd")
            await post_events(client, ingest, events[200:], stack.write_key)
        finally:
            await producer.stop()
        await wait_applied(stack.database_url, stack.topic, len(events) + len(BAD_RECORDS) + 1)
        assert stager.running, "the stager must survive bad records"
        conn = await asyncpg.connect(plain_url(stack.database_url))
        try:
            stored = await conn.fetchval("SELECT properties::text FROM touchpoints WHERE event_id = 'odd-1'")
        finally:
            await conn.close()
        assert json.loads(stored) == {"ratio": None, "big": 2**70}
        await assert_counts_match(client, api, events)

    dead = await read_topic(stack.bootstrap, f"{stack.topic}.dlq", len(BAD_RECORDS))
    assert sorted(v or b"" for v, _ in dead) == sorted(v or b"" for v, _ in BAD_RECORDS)
    by_value = {value or b"": headers for value, headers in dead}
    for value, reason in BAD_RECORDS:
        headers = by_value[value or b""]
        assert headers["reason"].decode() == reason, value
        assert headers["error"], "the reason must be stated"
        assert headers["source"].decode().startswith(f"{stack.topic}/")


async def test_a_record_postgres_refuses_is_dead_lettered_and_the_rest_applied(stack: Stack) -> None:
    """Whatever Postgres refuses for its data (here a CHECK the test adds) costs only that record."""
    conn = await asyncpg.connect(plain_url(stack.database_url))
    try:
        await conn.execute("ALTER TABLE touchpoints ADD CONSTRAINT test_refuses_poison "
                           "CHECK (event <> 'Poison Pill')")
    finally:
        await conn.close()
    events = make_events(customers=40, events=300, seed=12)
    poison = {**events[0], "event_id": "poison-1", "event": "Poison Pill"}
    ingest = stack.start_ingest()
    stager = stack.start_stager()
    api = stack.start_api()
    async with stack.client() as client:
        await post_events(client, ingest, [*events[:150], poison, *events[150:]], stack.write_key)
        await wait_applied(stack.database_url, stack.topic, len(events) + 1)
        assert stager.running
        await assert_counts_match(client, api, events)
        metrics = (await client.get(f"{stager.base_url}/metrics")).text
    assert 'stageline_stager_dead_lettered_total{reason="unstorable"} 1.0' in metrics

    [(value, headers)] = await read_topic(stack.bootstrap, f"{stack.topic}.dlq", 1)
    assert value is not None and orjson.loads(value)["event_id"] == "poison-1"
    assert headers["reason"] == b"unstorable"
    assert b"23514" in headers["error"] and b"test_refuses_poison" in headers["error"]
