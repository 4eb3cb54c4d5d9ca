"""Identity stitching: anonymous and known ids merge into one customer, in any order.

The property test drives the stager's batch transaction straight against real Postgres (any
interleaving of links and events, split into any batches); the end-to-end tests go through the
real broker with two stager processes and read through the API.
"""

import asyncio
import random
from collections import defaultdict
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stageline_shared.contract.record import Touchpoint
from stageline_shared.database import make_engine
from stageline_shared.journeys import load_journeys
from stageline_stager.batch import apply_touchpoints
from stageline_stager.engine import JourneyEngine
from stageline_stager.repository.identities import lock_identities
from tests.fixtures.events import STAGES
from tests.fixtures.expected import expected_stages
from tests.fixtures.identities import person, produce, touchpoint
from tests.fixtures.polling import wait_applied
from tests.fixtures.stack import Stack, plain_url

pytestmark = pytest.mark.integration
def as_raw(events: list[Touchpoint], owner: dict[str, str]) -> list[dict[str, Any]]:
    """The reference model's input: every event attributed to the person it belongs to."""
    return [{"event_id": t.event_id, "customer_id": owner[t.customer_id], "event": t.event,
             "occurred_at": t.occurred_at.isoformat()} for t in events]


def owners(people: int) -> dict[str, str]:
    owner = {}
    for n in range(people):
        for key in [f"new-user-{n}", f"user-{n}", f"old-user-{n}", *(f"anon-{n}-{d}" for d in range(3))]:
            owner[key] = f"new-user-{n}"
    return owner


async def snapshot(database_url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        return {
            "touchpoints": {r["event_id"]: r["customer_id"] for r in await conn.fetch(
                "SELECT event_id, customer_id FROM touchpoints")},
            "identities": {r["id"]: r["customer_id"] for r in await conn.fetch(
                "SELECT id, customer_id FROM identities")},
            "stages": {(r["journey"], r["customer_id"]): r["stage"] for r in await conn.fetch(
                "SELECT journey, customer_id, stage FROM customer_stages")},
            "counts": {(r["journey"], r["stage"]): r["customers"] for r in await conn.fetch(
                "SELECT journey, stage, customers FROM stage_counts WHERE customers <> 0")},
            "progress": {r[0] for r in await conn.fetch("SELECT customer_id FROM customer_progress")},
            "transitions": {r[0] for r in await conn.fetch("SELECT customer_id FROM stage_transitions")},
        }
    finally:
        await conn.close()


async def truncate(database_url: str) -> None:
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        await conn.execute("TRUNCATE touchpoints, identities, customer_stages, customer_progress, "
                           "stage_transitions, stage_counts, suppressions")
    finally:
        await conn.close()


def check_one_customer_each(state: dict[str, Any], events: list[Touchpoint], people: int) -> None:
    owner = owners(people)
    assert state["touchpoints"] == {t.event_id: owner[t.customer_id] for t in events}
    assert state["identities"] == owner
    expected = expected_stages(as_raw(events, owner))
    for journey, stages in expected.items():
        assert {c: s for (j, c), s in state["stages"].items() if j == journey} == stages
        counts: dict[str, int] = defaultdict(int)
        for stage in stages.values():
            counts[stage] += 1
        assert {s: n for (j, s), n in state["counts"].items() if j == journey} == dict(counts)
    assert set(STAGES) >= {s for (_, s) in state["counts"]}
    # Nothing is left under an id that was absorbed, however the merges chained.
    customers = set(owner.values())
    assert state["progress"] == customers
    assert state["transitions"] <= customers


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32), cuts=st.lists(st.integers(1, 40), max_size=8),
       redeliver=st.integers(0, 10))
def test_any_interleaving_and_batching_gives_one_customer(
    database_url: str, journeys_file: Any, seed: int, cuts: list[int], redeliver: int
) -> None:
    rng = random.Random(seed)
    events = person(0, rng) + person(1, rng)
    order = events[:]
    rng.shuffle(order)
    order += rng.sample(events, redeliver)  # redelivered records
    engines = [JourneyEngine(j) for j in load_journeys(journeys_file).values()]

    async def run() -> dict[str, Any]:
        await truncate(database_url)
        engine = make_engine(database_url)
        try:
            start = 0
            for cut in [*sorted(set(cuts)), len(order)]:
                batch = order[start:cut]
                start = max(start, cut)
                async with engine.begin() as conn:
                    await apply_touchpoints(conn, engines, batch)
        finally:
            await engine.dispose()
        return await snapshot(database_url)

    check_one_customer_each(asyncio.run(run()), events, people=2)


async def test_two_stagers_stitch_across_partitions(stack: Stack) -> None:
    rng = random.Random(7)
    people = 30
    events = [t for n in range(people) for t in person(n, rng)]
    rng.shuffle(events)
    stagers = [stack.start_stager(STAGELINE_MAX_BATCH="40") for _ in range(2)]
    api = stack.start_api()
    await produce(stack.bootstrap, stack.topic, events[: len(events) // 2])
    await produce(stack.bootstrap, stack.topic, events[len(events) // 2 :] + events[:50])
    await wait_applied(stack.database_url, stack.topic, len(events) + 50)
    assert all(s.running for s in stagers)
    check_one_customer_each(await snapshot(stack.database_url), events, people)

    async with stack.client(base_url=api) as client:
        counts = (await client.get("/v1/journeys/shop/stages")).json()
        assert counts["total"] == people
        for any_id in ("anon-0-0", "anon-0-2", "old-user-0", "user-0", "new-user-0"):
            body = (await client.get(f"/v1/customers/{any_id}")).json()
            assert body["customer_id"] == "new-user-0", any_id
            assert body["aliases"] == ["anon-0-0", "anon-0-1", "anon-0-2", "old-user-0", "user-0"]
        for n in range(3):
            timeline = (await client.get(f"/v1/customers/new-user-{n}/timeline",
                                         params={"limit": 500})).json()
            mine = sorted((t for t in events if t.event_id.startswith(f"{n}-")),
                          key=lambda t: (t.occurred_at, t.event_id))
            assert [i["event_id"] for i in timeline["items"] if i["type"] == "touchpoint"] == \
                [t.event_id for t in mine]


async def test_first_link_wins_and_conflict_is_counted(stack: Stack) -> None:
    stager = stack.start_stager()
    await produce(stack.bootstrap, stack.topic, [
        touchpoint("c1", 1, "Product Viewed", anon="dev-x"),
        touchpoint("c2", 2, "Identified", user="alice", anon="dev-x", type_="identify"),
    ])
    await wait_applied(stack.database_url, stack.topic, 2)
    await produce(stack.bootstrap, stack.topic, [
        touchpoint("c3", 3, "Identified", user="bob", anon="dev-x", type_="identify"),
        touchpoint("c4", 4, "Order Completed", anon="dev-x"),
    ])
    await wait_applied(stack.database_url, stack.topic, 4)
    state = await snapshot(stack.database_url)
    assert state["identities"]["dev-x"] == "alice"
    assert state["touchpoints"] == {"c1": "alice", "c2": "alice", "c3": "bob", "c4": "alice"}
    async with stack.client() as client:
        metrics = (await client.get(f"{stager.base_url}/metrics")).text
    assert "stageline_stager_identity_conflicts_total 1.0" in metrics
    assert "stageline_stager_identity_merges_total 1.0" in metrics


async def test_erase_removes_everything_and_suppresses_later_events(stack: Stack) -> None:
    stager = stack.start_stager()
    api = stack.start_api()
    rng = random.Random(3)
    alice, bob = person(0, rng), person(1, rng)
    await produce(stack.bootstrap, stack.topic, alice + bob)
    await wait_applied(stack.database_url, stack.topic, len(alice) + len(bob))
    later = [touchpoint("late-1", 900, "Order Completed", anon="anon-0-2"),
             touchpoint("late-2", 901, "Order Completed", user="user-0")]
    async with stack.client(base_url=api) as client:
        refused = await client.delete("/v1/customers/anon-0-1")  # a read key may not erase
        assert refused.status_code == 403
        queued = await client.delete(
            "/v1/customers/anon-0-1", headers={"Authorization": f"Bearer {stack.keys['admin']}"}
        )
        assert queued.status_code == 202, queued.text
        assert queued.json()["status"] == "queued"
    await wait_applied(stack.database_url, stack.topic, len(alice) + len(bob) + 1)
    await produce(stack.bootstrap, stack.topic, later)
    await wait_applied(stack.database_url, stack.topic, len(alice) + len(bob) + 3)
    state = await snapshot(stack.database_url)
    owner = owners(2)
    assert state["touchpoints"] == {t.event_id: owner[t.customer_id] for t in bob}
    assert set(state["identities"]) == {k for k, v in owner.items() if v == "new-user-1"}
    expected = expected_stages(as_raw(bob, owner))
    assert {c for (_, c) in state["stages"]} == {"new-user-1"}
    assert sum(n for (j, _), n in state["counts"].items() if j == "shop") == len(expected["shop"])
    conn = await asyncpg.connect(plain_url(stack.database_url))
    try:
        transitions = await conn.fetchval(
            "SELECT count(*) FROM stage_transitions WHERE customer_id = 'new-user-0'")
        progress = {r["customer_id"] for r in await conn.fetch("SELECT customer_id FROM customer_progress")}
        suppressed = {r["id"] for r in await conn.fetch("SELECT id FROM suppressions")}
    finally:
        await conn.close()
    assert transitions == 0
    assert progress == {"new-user-1"}  # the erased customer's rule counts are gone with it
    assert suppressed == {k for k, v in owner.items() if v == "new-user-0"}
    async with stack.client() as client:
        metrics = (await client.get(f"{stager.base_url}/metrics")).text
    assert "stageline_stager_suppressed_total 2.0" in metrics
    assert "stageline_stager_customers_erased_total 1.0" in metrics
    async with stack.client(base_url=api) as client:
        assert (await client.get("/v1/customers/user-0")).status_code == 404
        assert (await client.get("/v1/customers/anon-0-1/timeline")).status_code == 404
        counts = (await client.get("/v1/journeys/shop/stages")).json()
        assert counts["total"] == 1


async def test_an_id_created_by_a_concurrent_batch_is_locked_once_that_batch_commits(database_url: str) -> None:
    """lock_identities inserts only missing ids: one another batch is creating right now makes
    the insert wait, then is locked and mapped like any existing id."""
    url = plain_url(database_url)
    first, second, observer = [await asyncpg.connect(url) for _ in range(3)]
    try:
        await first.execute("BEGIN")
        assert await lock_identities(first, ["raced", "first-only"]) == {
            "raced": "raced", "first-only": "first-only"}
        await second.execute("BEGIN")
        waiting = asyncio.create_task(lock_identities(second, ["raced", "second-only"]))
        await asyncio.sleep(0.3)
        assert not waiting.done(), "the insert of 'raced' must wait for the first batch"
        await first.execute("UPDATE identities SET customer_id = 'merged' WHERE id = 'raced'")
        await first.execute("COMMIT")
        assert await asyncio.wait_for(waiting, 10) == {"raced": "merged", "second-only": "second-only"}
        with pytest.raises(asyncpg.exceptions.LockNotAvailableError):  # the second batch holds it
            await observer.fetch("SELECT id FROM identities WHERE id = 'raced' FOR UPDATE NOWAIT")
        await second.execute("COMMIT")
    finally:
        for conn in (first, second, observer):
            await conn.close()
