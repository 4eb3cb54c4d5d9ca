"""Postgres crashed or stopped: nothing acknowledged is lost, and ingest keeps taking events.

The test runs its own PostgreSQL server (it crashes it), with the stagers' default settings:
synchronous_commit off, so a crash loses commits Postgres had acknowledged, and the stagers must
apply those records again from Kafka.
"""

import asyncio
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from stageline_devstack.broker import Broker
from stageline_devstack.databases import ensure_database
from stageline_devstack.postgres import EmbeddedPostgres
from stageline_shared.migrate import upgrade
from tests.fixtures.expected import assert_counts_match
from tests.fixtures.keys import create_keys, new_key, revoke_secret
from tests.fixtures.load import SteadyLoad
from tests.fixtures.oracle import assert_journeys_match
from tests.fixtures.polling import applied_offsets, metric, wait_for
from tests.fixtures.stack import Stack, plain_url

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def crashable_pg() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL server of this module's own, to crash."""
    data_dir = Path(tempfile.mkdtemp(prefix="stageline-crash-pg-")) / "data"
    server = EmbeddedPostgres(data_dir, delete_on_stop=True).start()
    yield server
    server.stop()
    shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture
def crash_stack(
    broker: Broker, crashable_pg: EmbeddedPostgres, topic: str, journeys_file: Path, tmp_path: Path
) -> Iterator[Stack]:
    url = ensure_database(crashable_pg.url(), f"stageline_crash_{uuid.uuid4().hex[:8]}")
    upgrade(url)
    services = Stack(broker.bootstrap_servers, url, topic, journeys_file, tmp_path,
                     keys=asyncio.run(create_keys(url)))
    yield services
    services.stop_all()


async def _stored_event_ids(database_url: str) -> list[str]:
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        return [row[0] for row in await conn.fetch("SELECT event_id FROM touchpoints")]
    finally:
        await conn.close()


@pytest.mark.parametrize("outage", ["crash", "stop_fast"])
async def test_postgres_down_under_load_loses_no_acknowledged_event(
    crash_stack: Stack, crashable_pg: EmbeddedPostgres, outage: str
) -> None:
    """Postgres crashed (immediate stop: commits it had acknowledged may be lost) or stopped
    cleanly, twice, for 5 s each, while two stagers apply 300 events/s."""
    stack = crash_stack
    ingest = stack.start_ingest()
    api = stack.start_api()
    stagers = [stack.start_stager(STAGELINE_DB_RETRY_S="0.5") for _ in range(2)]
    load = SteadyLoad([ingest], stack.write_key, rate=300, seed=11).start()
    async with stack.client() as client:
        await load.wait_for_acknowledged(1500)
        for crash in range(2):
            before = await applied_offsets(stack.database_url, stack.topic)
            getattr(crashable_pg, outage)()
            outage_starts = len(load.sent)
            await asyncio.sleep(5)
            during_outage = len(load.sent) - outage_starts
            crashable_pg.start_again()
            after = await applied_offsets(stack.database_url, stack.topic)
            log.info("%s %d: stored offsets %d before, %d after recovery; %d events acknowledged "
                     "while Postgres was down", outage, crash + 1, before, after, during_outage)
            assert during_outage >= 750, "ingest must keep taking events while Postgres is down"
            await load.wait_for_acknowledged(1500)
        await load.stop()
        assert all(s.running for s in stagers), "a stager must ride out the crash"
        assert set(load.answers) == {"202"}, load.answers  # no 503: the write key stays cached

        produced = metric((await client.get(f"{ingest}/metrics")).text, "stageline_ingest_events_accepted_total")
        assert produced == len(load.sent)

        async def all_applied() -> bool:
            return await applied_offsets(stack.database_url, stack.topic) == produced

        await wait_for(all_applied, 120, "every record to be applied")
        stored = await _stored_event_ids(stack.database_url)
        assert len(stored) == len(set(stored))
        assert set(stored) == {e["event_id"] for e in load.sent}, "acknowledged events were lost"
        await assert_counts_match(client, api, load.sent)
        compared = await assert_journeys_match(stack.database_url, load.sent)
        assert compared > 0
        texts = [(await client.get(f"{s.base_url}/metrics")).text for s in stagers]
    retried = sum(metric(text, "stageline_stager_db_retries_total") for text in texts)
    assert retried > 0, "no stager met the crash: the test did not test recovery"


async def test_ingest_serves_keys_it_has_seen_through_an_outage_and_no_others(
    crash_stack: Stack, crashable_pg: EmbeddedPostgres
) -> None:
    """With Postgres stopped past the key cache's 5 s, a write key seen before still sends
    events to the broker; a key never seen gets 503 database_unavailable; ingest stays ready.
    Once Postgres is back, a revocation made meanwhile applies within the cache bound."""
    stack = crash_stack
    ingest = stack.start_ingest()  # the default STAGELINE_KEY_CACHE_S, 5
    unseen = await new_key(stack.database_url, "write")
    event = {"customer_id": "c-1", "event": "Product Viewed"}
    async with stack.client() as client:
        async def post(key: str) -> httpx.Response:
            return await client.post(f"{ingest}/v1/events", json=event, auth=(key, ""))

        assert (await post(stack.write_key)).status_code == 202
        crashable_pg.stop_fast()
        try:
            await asyncio.sleep(6)  # past the cache: each lookup now tries Postgres
            for _ in range(20):
                assert (await post(stack.write_key)).status_code == 202
            refused = await post(unseen)
            assert refused.status_code == 503, refused.text
            assert refused.json()["code"] == "database_unavailable"
            assert refused.headers["retry-after"] == "5"
            ready = await client.get(f"{ingest}/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"broker": True, "database": False}
        finally:
            crashable_pg.start_again()
        metrics = (await client.get(f"{ingest}/metrics")).text
        assert metric(metrics, "stageline_ingest_events_accepted_total") == 21  # all on the broker
        assert (await post(unseen)).status_code == 202  # checked now that Postgres answers

        await revoke_secret(stack.database_url, stack.write_key)
        revoked_at = time.monotonic()
        await wait_for(lambda: _refused(post(stack.write_key)), 5 + 2, "the revocation to apply")
        assert time.monotonic() - revoked_at <= 5 + 1.5


async def _refused(response: Awaitable[httpx.Response]) -> bool:
    return (await response).status_code == 401
