"""Each process killed, and the broker cut off, under a steady load: nothing acknowledged is lost,
nothing is applied twice, and every customer's stage, entered_at and transitions equal an
independent recomputation (tests/fixtures/oracle.py). Replays are measured: a stager that
takes over a killed one's partitions starts at their stored offsets, so it meets no record
already applied (no duplicate skipped) unless a client resent one."""

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from stageline_devstack.broker import Broker
from stageline_devstack.ports import free_port
from stageline_devstack.processes import ServiceProcess
from tests.fixtures.expected import assert_counts_match
from tests.fixtures.faults import TcpProxy, wait_inside_transaction
from tests.fixtures.load import SteadyLoad
from tests.fixtures.oracle import assert_journeys_match
from tests.fixtures.polling import applied_offsets, metric, wait_for
from tests.fixtures.stack import Stack, plain_url

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

BATCH = "200"  # records per stager batch: several transactions a second at this load


async def _stored_event_ids(database_url: str) -> list[str]:
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        return [row[0] for row in await conn.fetch("SELECT event_id FROM touchpoints")]
    finally:
        await conn.close()


async def _stager_metric(stack: Stack, stagers: list[ServiceProcess], name: str) -> float:
    async with stack.client() as client:
        texts = [(await client.get(f"{s.base_url}/metrics")).text for s in stagers if s.running]
    return sum(metric(text, name) for text in texts)


async def _settle(stack: Stack, stagers: list[ServiceProcess], load: SteadyLoad, api: str) -> float:
    """Stop the load, wait until the live stagers hold every acknowledged event and have no lag,
    check everything against the recomputation; returns the duplicates the stagers skipped."""
    await load.stop()
    sent = {e["event_id"] for e in load.sent}
    previous = -1

    async def caught_up() -> bool:
        nonlocal previous
        stored = set(await _stored_event_ids(stack.database_url))
        offsets = await applied_offsets(stack.database_url, stack.topic)
        lag = await _stager_metric(stack, stagers, "stageline_stager_consumer_lag")
        done = sent <= stored and lag == 0 and offsets == previous
        previous = offsets
        return done

    await wait_for(caught_up, 120, "the stagers to apply every acknowledged event", interval_s=0.5)
    stored = await _stored_event_ids(stack.database_url)
    assert len(stored) == len(set(stored))
    assert set(stored) == sent, "the touchpoints stored must be exactly the acknowledged ones"
    async with stack.client() as client:
        await assert_counts_match(client, api, load.sent)
    assert await assert_journeys_match(stack.database_url, load.sent) > 0
    duplicates = await _stager_metric(stack, stagers, "stageline_stager_duplicates_skipped_total")
    log.info("%d events, answers %s, %.0f duplicates skipped", len(sent), dict(load.answers), duplicates)
    return duplicates


async def test_kill_9_ingest_under_load(stack: Stack) -> None:
    api = stack.start_api()
    stagers = [stack.start_stager(STAGELINE_MAX_BATCH=BATCH) for _ in range(2)]
    first = stack.start_ingest()
    load = SteadyLoad([first], stack.write_key, seed=21).start()
    await load.wait_for_acknowledged(1000)
    killed = next(p for p in stack.processes if p.base_url == first)
    killed.kill()
    load.targets.append(stack.start_ingest())  # lanes move to it when their connection fails
    await load.wait_for_acknowledged(1500)
    duplicates = await _settle(stack, stagers, load, api)
    failed = sum(n for answer, n in load.answers.items() if answer != "202")
    assert failed > 0, "no request met the killed ingest"
    # Only resends of requests cut off by the kill, some of whose events had reached the broker.
    assert duplicates <= load.lanes * load.batch


async def test_kill_9_stager_inside_a_transaction_while_another_runs(stack: Stack) -> None:
    api = stack.start_api()
    ingest = stack.start_ingest()
    stagers = [stack.start_stager(STAGELINE_MAX_BATCH=BATCH) for _ in range(2)]
    load = SteadyLoad([ingest], stack.write_key, seed=22).start()
    await load.wait_for_acknowledged(1000)
    victim = stagers[0]
    assert victim.process is not None
    await wait_inside_transaction(stack.database_url, victim.process.pid)
    victim.kill()
    await load.wait_for_acknowledged(1500)
    assert await _settle(stack, stagers, load, api) == 0
    assert set(load.answers) == {"202"}


async def test_kill_9_stager_during_a_rebalance(stack: Stack) -> None:
    api = stack.start_api()
    ingest = stack.start_ingest()
    stagers = [stack.start_stager(STAGELINE_MAX_BATCH=BATCH) for _ in range(2)]
    load = SteadyLoad([ingest], stack.write_key, seed=23).start()
    await load.wait_for_acknowledged(1000)
    victim = stagers[0]
    assert victim.log_file is not None
    revocations = victim.log_file.read_text().count("partitions revoked")
    stagers.append(stack.start_stager(STAGELINE_MAX_BATCH=BATCH))  # joining starts a rebalance

    async def revoking() -> bool:
        assert victim.log_file is not None
        return victim.log_file.read_text().count("partitions revoked") > revocations

    await wait_for(revoking, 60, "the rebalance to reach the first stager", interval_s=0.01)
    victim.kill()
    await load.wait_for_acknowledged(1500)
    assert await _settle(stack, stagers, load, api) == 0
    assert set(load.answers) == {"202"}


@pytest.fixture
def cut_off_broker(stack: Stack, tmp_path: Path) -> Iterator[TcpProxy]:
    """The test's own broker, which every client reaches only through a proxy the test can cut."""
    real, front = free_port(), free_port()
    proxy = TcpProxy(front, real).start()
    broker = Broker(real, tmp_path / "proxied-broker.log", advertised_port=front).start()
    stack.bootstrap = broker.bootstrap_servers
    yield proxy
    stack.stop_all()
    proxy.close()
    broker.stop()


async def test_broker_gone_and_back_under_load(stack: Stack, cut_off_broker: TcpProxy) -> None:
    """While the broker is unreachable ingest answers 503 (nothing acknowledged that it does not
    hold) and the load's resends, some of events the broker had taken, are applied once."""
    api = stack.start_api()
    ingest = stack.start_ingest(STAGELINE_PRODUCE_TIMEOUT_S="3", STAGELINE_RETRY_AFTER_S="1")
    stagers = [stack.start_stager(STAGELINE_MAX_BATCH=BATCH) for _ in range(2)]
    load = SteadyLoad([ingest], stack.write_key, seed=24).start()
    await load.wait_for_acknowledged(1000)
    cut_off_broker.cut()
    during = len(load.sent)
    await asyncio.sleep(5)
    assert len(load.sent) - during <= load.lanes * load.batch, "acknowledged with no broker"
    cut_off_broker.restore()
    await load.wait_for_acknowledged(1500, timeout_s=90)
    await _settle(stack, stagers, load, api)
    assert load.answers["503"] > 0, load.answers
    assert all(s.running for s in stagers)
