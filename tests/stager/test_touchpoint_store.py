"""Touchpoints are copied straight into their table after a lookup of the ids already stored; an
id stored by another transaction in between sends the batch's rows through ON CONFLICT instead,
and the event is applied once, by whichever transaction stored it first."""

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from stageline_shared.contract.record import Touchpoint
from stageline_shared.database import driver_connection, make_engine
from stageline_shared.journeys import load_journeys
from stageline_stager.batch import apply_touchpoints
from stageline_stager.engine import JourneyEngine
from tests.fixtures.stack import plain_url

pytestmark = pytest.mark.integration
AT = datetime(2026, 11, 1, tzinfo=UTC)


def touchpoint(event_id: str, customer: str, event: str) -> Touchpoint:
    return Touchpoint(event_id=event_id, customer_id=customer, event=event, occurred_at=AT, received_at=AT)


async def _wait_for_lock(other: asyncpg.Connection, pid: int) -> None:
    """Until backend `pid` waits on a lock (the COPY, on the key the other transaction holds)."""
    async with asyncio.timeout(10):
        while await other.fetchval(
            "SELECT wait_event_type IS DISTINCT FROM 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
        ):
            await asyncio.sleep(0.02)


async def test_an_id_stored_between_lookup_and_copy_is_a_duplicate_not_an_error(
    database_url: str, journeys_file: Path
) -> None:
    journeys = load_journeys(journeys_file).values()
    engines = [JourneyEngine(j) for j in journeys]
    batch = [touchpoint("shared-id", "batch-customer", "Order Completed"),
             touchpoint("own-id", "batch-customer", "Ad Clicked")]
    other = await asyncpg.connect(plain_url(database_url))
    engine = make_engine(database_url)
    try:
        # Another stager holds the same id, for another customer, not yet committed: the lookup
        # cannot see it, and the COPY waits on its key.
        rival = other.transaction()
        await rival.start()
        await other.execute(
            "INSERT INTO touchpoints (event_id, customer_id, event, occurred_at, received_at) "
            "VALUES ('shared-id', 'rival-customer', 'Ad Clicked', $1, $1)", AT)
        async with engine.begin() as conn:
            pid = (await driver_connection(conn)).get_server_pid()
            applying = asyncio.create_task(apply_touchpoints(conn, engines, batch))
            await _wait_for_lock(other, pid)
            await rival.commit()
            outcome = await applying
        assert (outcome.applied, outcome.duplicates) == (1, 1)

        stored = dict(await other.fetch("SELECT event_id, customer_id FROM touchpoints"))
        assert stored == {"shared-id": "rival-customer", "own-id": "batch-customer"}
        stages = {tuple(row) for row in
                  await other.fetch("SELECT journey, customer_id, stage FROM customer_stages")}
        # Only "Ad Clicked" moved the batch's customer: the rival's order is not counted for it.
        assert stages == {(journey.name, "batch-customer", "awareness") for journey in journeys}
    finally:
        await other.close()
        await engine.dispose()
