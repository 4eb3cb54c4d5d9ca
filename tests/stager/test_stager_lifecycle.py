"""Stager process behaviour: clean SIGTERM, bad journey files, a restarted (empty) broker."""

import asyncio
from functools import partial
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from stageline_devstack.broker import Broker
from stageline_devstack.ports import free_port
from stageline_devstack.processes import ServiceProcess
from tests.fixtures.events import make_events, post_events
from tests.fixtures.expected import assert_counts_match
from tests.fixtures.polling import applied_offsets, wait_applied, wait_for
from tests.fixtures.stack import Stack, plain_url

pytestmark = pytest.mark.integration


async def test_sigterm_finishes_the_batch_and_exits_0(stack: Stack) -> None:
    events = make_events(customers=100, events=2000, seed=21)
    ingest = stack.start_ingest()
    async with stack.client() as client:
        await post_events(client, ingest, events, stack.write_key)
    stager = stack.start_stager(STAGELINE_MAX_BATCH="50")
    while await applied_offsets(stack.database_url, stack.topic) == 0:
        await asyncio.sleep(0.01)
    assert stager.stop() == 0
    stopped_at = await applied_offsets(stack.database_url, stack.topic)
    await asyncio.sleep(0.5)
    assert await applied_offsets(stack.database_url, stack.topic) == stopped_at
    stack.start_stager()
    await wait_applied(stack.database_url, stack.topic, len(events))
    async with stack.client() as client:
        await assert_counts_match(client, stack.start_api(), events)


def test_invalid_journey_file_fails_at_start_naming_the_line(stack: Stack, tmp_path: Path) -> None:
    bad = tmp_path / "journeys.yaml"
    bad.write_text(
        "journeys:\n  - name: shop\n    stages: [a, b]\n    rules:\n"
        "      - stage: c\n        match: {event: X}\n"
    )
    log_file = tmp_path / "stager.log"
    process = ServiceProcess(
        "stager", "stageline_stager",
        stack.env(STAGELINE_JOURNEYS_FILE=str(bad), STAGELINE_STAGER_PORT=str(free_port())),
        "http://127.0.0.1:1/healthz", log_file,
    )
    with pytest.raises(RuntimeError, match="exited with code 2"):
        process.start(timeout_s=30)
    assert f"{bad}:5: journeys.0.rules.0.stage: rule stage 'c' is not one of" in log_file.read_text()


async def test_restarted_empty_broker_does_not_skip_new_events(
    stack: Stack, tmp_path: Path
) -> None:
    """Offsets stored against one broker must not make the stager skip a new broker's records."""
    first = make_events(customers=50, events=500, seed=31)
    second = make_events(customers=50, events=300, seed=32)
    api = stack.start_api()
    async with stack.client() as client:
        for events, stored_after in ((first, 500), (second, 800)):
            # Each broker starts empty at offset 0; the first one's stored offsets are higher
            # than anything the second will hold for a while.
            own = Broker(free_port(), tmp_path / "own-broker.log").start()
            stack.bootstrap = own.bootstrap_servers
            stack.start_ingest()
            stager = stack.start_stager()
            try:
                await post_events(client, stack.processes[-2].base_url, events, stack.write_key)
                await wait_for(partial(touchpoints_stored, stack, stored_after), 60,
                               f"{stored_after} touchpoints")
            finally:
                stager.stop()
                own.stop()
        await assert_counts_match(client, api, first + second)


async def touchpoints_stored(stack: Stack, expected: int) -> bool:
    conn = await asyncpg.connect(plain_url(stack.database_url))
    try:
        stored = await conn.fetchval("SELECT count(*) FROM touchpoints")
    finally:
        await conn.close()
    assert stored <= expected
    return bool(stored == expected)


@pytest.mark.parametrize("setting", [None, "on", "off"])
def test_batch_sessions_use_the_configured_synchronous_commit(stack: Stack, setting: str | None) -> None:
    """The stager's own sessions report the setting (default off), read back at its start."""
    stager = stack.start_stager(**({"STAGELINE_SYNCHRONOUS_COMMIT": setting} if setting else {}))
    stager.stop()
    assert stager.log_file is not None
    expected = setting or "off"
    assert f"batch transactions commit with synchronous_commit={expected}" in stager.log_file.read_text()


async def _consume_and_commit(bootstrap: str, topic: str, group_id: str, expected: int) -> None:
    """Read the whole topic as the stager's group and commit its offsets in Kafka."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group_id,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        seen = 0
        async with asyncio.timeout(60):
            while seen < expected:
                seen += sum(len(r) for r in (await consumer.getmany(timeout_ms=500)).values())
        await consumer.commit()
    finally:
        await consumer.stop()


async def test_offsets_committed_in_kafka_do_not_skip_events_missing_from_postgres(stack: Stack) -> None:
    """Postgres holds the offsets: with none stored there, the stager reads from the beginning,
    whatever the group committed in Kafka (another tool, an older deployment, a restored DB)."""
    events = make_events(customers=50, events=400, seed=33)
    ingest = stack.start_ingest()
    api = stack.start_api()
    async with stack.client() as client:
        await post_events(client, ingest, events, stack.write_key)
        await _consume_and_commit(stack.bootstrap, stack.topic, f"stager-{stack.topic}", len(events))
        stager = stack.start_stager()
        await wait_applied(stack.database_url, stack.topic, len(events))
        await assert_counts_match(client, api, events)
        metrics = (await client.get(f"{stager.base_url}/metrics")).text
    # Records the consumer returned before its assignment was positioned were dropped, not applied
    # and then replayed: every event applied once, none seen twice.
    assert "stageline_stager_events_applied_total 400.0" in metrics
    assert "stageline_stager_duplicates_skipped_total 0.0" in metrics
