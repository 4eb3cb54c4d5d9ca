"""Stager process behaviour: clean SIGTERM, bad journey files, a restarted (empty) broker."""

import asyncio
from pathlib import Path

import httpx
import pytest

from stageline_devstack.broker import Broker, free_port
from stageline_devstack.processes import ServiceProcess
from tests.integration.support import (
    Stack,
    applied_offsets,
    assert_counts_match,
    make_events,
    post_events,
    wait_applied,
)

pytestmark = pytest.mark.integration


async def test_sigterm_finishes_the_batch_and_exits_0(stack: Stack) -> None:
    events = make_events(customers=100, events=2000, seed=21)
    ingest = stack.start_ingest()
    async with httpx.AsyncClient(timeout=30) as client:
        await post_events(client, ingest, events)
    stager = stack.start_stager(STAGELINE_MAX_BATCH="50")
    while await applied_offsets(stack.database_url, stack.topic) == 0:
        await asyncio.sleep(0.01)
    assert stager.stop() == 0
    stopped_at = await applied_offsets(stack.database_url, stack.topic)
    await asyncio.sleep(0.5)
    assert await applied_offsets(stack.database_url, stack.topic) == stopped_at
    stack.start_stager()
    await wait_applied(stack.database_url, stack.topic, len(events))
    async with httpx.AsyncClient(timeout=30) as client:
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
    first_batch = make_events(customers=50, events=500, seed=31)
    second_batch = make_events(customers=50, events=300, seed=32)
    api = stack.start_api()
    async with httpx.AsyncClient(timeout=30) as client:
        for events in (first_batch, second_batch):
            own = Broker(free_port(), tmp_path / "own-broker.log").start()
            stack.bootstrap = own.bootstrap_servers
            ingest = stack.start_ingest()
            stager = stack.start_stager()
            try:
                await post_events(client, ingest, events)
                # The second broker starts at offset 0 again; the first one's offsets are higher.
                await wait_for_touchpoints(stack, len(events), first_batch, second_batch)
            finally:
                stager.stop()
                own.stop()
        await assert_counts_match(client, api, first_batch + second_batch)


async def wait_for_touchpoints(stack: Stack, _: int, *batches: list[dict[str, object]]) -> None:
    import asyncpg

    from tests.integration.support import plain_url, wait_for

    seen_ids = {str(e["event_id"]) for batch in batches for e in batch}

    async def stored() -> bool:
        conn = await asyncpg.connect(plain_url(stack.database_url))
        try:
            ids = {r[0] for r in await conn.fetch("SELECT event_id FROM touchpoints")}
        finally:
            await conn.close()
        return bool(ids) and ids <= seen_ids and len(ids) in {500, 800}

    await wait_for(stored, 60, "touchpoints to be stored")
