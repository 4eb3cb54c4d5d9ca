"""End to end through HTTP, the real broker and real Postgres: exact counts and timelines."""

import asyncio

import asyncpg
import pytest

from tests.fixtures.events import make_events, post_events, with_resends
from tests.fixtures.expected import assert_counts_match, assert_timelines_match
from tests.fixtures.polling import applied_offsets, metric, wait_applied, wait_for
from tests.fixtures.stack import Stack, plain_url

pytestmark = pytest.mark.integration


async def test_shuffled_events_with_resends_give_exact_counts_and_timelines(stack: Stack) -> None:
    events = make_events(customers=500, events=5000, seed=1)
    sent = with_resends(events, 0.10, seed=2)
    ingest = stack.start_ingest()
    stager = stack.start_stager()
    api = stack.start_api()
    async with stack.client() as client:
        assert await post_events(client, ingest, sent, stack.write_key) == 5500
        await wait_applied(stack.database_url, stack.topic, len(sent))
        await assert_counts_match(client, api, events)
        await assert_timelines_match(client, api, events)

        metrics = (await client.get(f"{stager.base_url}/metrics")).text
        assert metric(metrics, "stageline_stager_events_applied_total") == 5000
        assert metric(metrics, "stageline_stager_duplicates_skipped_total") == 500
        ingest_metrics = (await client.get(f"{ingest}/metrics")).text
        assert metric(ingest_metrics, "stageline_ingest_events_accepted_total") == 5500


@pytest.mark.parametrize("codec", ["none", "gzip", "lz4"])  # zstd, the default, in every other test
async def test_every_compression_codec_reaches_the_stager_exactly(stack: Stack, codec: str) -> None:
    events = make_events(customers=100, events=1000, seed=7)
    sent = with_resends(events, 0.10, seed=8)
    ingest = stack.start_ingest(STAGELINE_COMPRESSION=codec)
    stager = stack.start_stager()
    api = stack.start_api()
    async with stack.client() as client:
        assert await post_events(client, ingest, sent, stack.write_key) == len(sent)
        await wait_applied(stack.database_url, stack.topic, len(sent))
        await assert_counts_match(client, api, events)
        await assert_timelines_match(client, api, events)
        metrics = (await client.get(f"{stager.base_url}/metrics")).text
    assert metric(metrics, "stageline_stager_events_applied_total") == 1000
    assert metric(metrics, "stageline_stager_duplicates_skipped_total") == len(sent) - 1000


async def test_kill_9_mid_stream_then_restart_gives_exact_counts(stack: Stack) -> None:
    events = make_events(customers=300, events=3000, seed=3)
    sent = with_resends(events, 0.10, seed=4)
    first, rest = sent[: len(sent) * 7 // 10], sent[len(sent) * 7 // 10 :]
    ingest = stack.start_ingest()
    api = stack.start_api()
    async with stack.client() as client:
        await post_events(client, ingest, first, stack.write_key)
        stager = stack.start_stager(STAGELINE_MAX_BATCH="20")

        async def some_applied() -> int:
            return await applied_offsets(stack.database_url, stack.topic)

        while await some_applied() < 300:
            await asyncio.sleep(0.01)
        stager.kill()
        done_before_kill = await some_applied()
        assert 300 <= done_before_kill < len(first), "the kill must land mid-stream"

        await post_events(client, ingest, rest, stack.write_key)
        stack.start_stager()
        await wait_applied(stack.database_url, stack.topic, len(sent))
        await assert_counts_match(client, api, events)
        await assert_timelines_match(client, api, events)


async def test_two_stagers_share_partitions_and_count_exactly(stack: Stack) -> None:
    events = make_events(customers=400, events=4000, seed=5)
    sent = with_resends(events, 0.10, seed=6)
    ingest = stack.start_ingest()
    api = stack.start_api()
    stagers = [stack.start_stager(STAGELINE_MAX_BATCH="100") for _ in range(2)]

    async def both_assigned() -> bool:  # else the first to join may take the whole first half
        return all(s.log_file is not None and f"partitions assigned: {stack.topic}/" in s.log_file.read_text()
                   for s in stagers)

    await wait_for(both_assigned, 60, "both stagers to be assigned partitions")
    async with stack.client() as client:
        await post_events(client, ingest, sent[:2500], stack.write_key)
        # A third stager joins mid-stream: partitions move while records are in flight.
        stagers.append(stack.start_stager(STAGELINE_MAX_BATCH="100"))
        await post_events(client, ingest, sent[2500:], stack.write_key)
        await wait_applied(stack.database_url, stack.topic, len(sent))
        assert all(s.running for s in stagers)
        await assert_counts_match(client, api, events)
        await assert_timelines_match(client, api, events)
        texts = [(await client.get(f"{s.base_url}/metrics")).text for s in stagers]
    applied = [metric(t, "stageline_stager_events_applied_total") for t in texts]
    skipped = [metric(t, "stageline_stager_duplicates_skipped_total") for t in texts]
    assert sum(applied) == 4000, applied  # each event applied once, across all processes
    assert sum(skipped) == len(sent) - 4000, skipped
    assert sum(1 for a in applied[:2] if a > 0) == 2, "both first stagers must have had work"


async def _drop_stager_connections(database_url: str) -> int:
    """Terminate every other session on the test database (what a Postgres restart does to them)."""
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        return int(await conn.fetchval("""
            SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid()
        """))
    finally:
        await conn.close()


async def test_stager_rides_out_dropped_database_connections(stack: Stack) -> None:
    """Connections lost mid-batch: the stager retries, never exits, and counts stay exact."""
    events = make_events(customers=300, events=3000, seed=5)
    ingest = stack.start_ingest()
    api = stack.start_api()
    stager = stack.start_stager(STAGELINE_MAX_BATCH="50", STAGELINE_DB_RETRY_S="0.2")
    async with stack.client() as client:
        await post_events(client, ingest, events, stack.write_key)
        dropped = 0
        while await applied_offsets(stack.database_url, stack.topic) < len(events) and dropped < 200:
            dropped += await _drop_stager_connections(stack.database_url)
            await asyncio.sleep(0.05)
            assert stager.running, "the stager must survive lost database connections"
        assert dropped > 0
        await wait_applied(stack.database_url, stack.topic, len(events))
        assert stager.running
        await assert_counts_match(client, api, events)
        await assert_timelines_match(client, api, events)
        metrics = (await client.get(f"{stager.base_url}/metrics")).text
        assert metric(metrics, "stageline_stager_events_applied_total") == len(events)
        retried = metric(metrics, "stageline_stager_db_retries_total")  # every reason
        assert retried > 0, "no batch met a dropped connection: the test did not test the retry"
