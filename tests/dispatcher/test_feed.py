"""The change feed against real parts: two stagers over a shuffled, duplicated workload that
merges ids, relayed by the dispatcher, read over HTTP and from Kafka; erasure in the feed."""

import random
from collections import Counter, defaultdict
from typing import Any

import asyncpg
import pytest

from tests.fixtures.feed import changes_on_topic, fetch, read_feed, wait_relayed
from tests.fixtures.identities import person, produce, touchpoint
from tests.fixtures.polling import wait_applied, wait_for
from tests.fixtures.stack import Stack, plain_url

pytestmark = pytest.mark.integration

Key = tuple[str, str, str | None, str]  # journey, event_id, from_stage, to_stage


def key(item: Any) -> Key:
    return (item["journey"], item["event_id"], item["from_stage"], item["to_stage"])


async def test_the_feed_is_every_transition_in_per_customer_order_with_no_gaps(stack: Stack) -> None:
    rng = random.Random(11)
    people = 25
    events = [t for n in range(people) for t in person(n, rng)]
    rng.shuffle(events)
    resent = rng.sample(events, 60)
    for _ in range(2):
        stack.start_stager(STAGELINE_MAX_BATCH="40")
    stack.start_dispatcher()
    api = stack.start_api()
    await produce(stack.bootstrap, stack.topic, events[: len(events) // 2])
    await produce(stack.bootstrap, stack.topic, events[len(events) // 2 :] + resent)
    await wait_applied(stack.database_url, stack.topic, len(events) + len(resent))
    changes = await wait_relayed(stack.database_url)

    async with stack.client() as client:
        feed = await read_feed(client, api)
    assert [item["position"] for item in feed] == list(range(1, changes + 1))  # no gaps, no repeats

    transitions = await fetch(stack.database_url, "SELECT id, journey, customer_id, from_stage, to_stage, "
                                                  "event_id FROM stage_transitions ORDER BY id")
    owner = {r["id"]: r["customer_id"] for r in await fetch(stack.database_url,
                                                           "SELECT id, customer_id FROM identities")}
    stage_items = [i for i in feed if i["kind"] == "stage"]
    # The same transitions, each attributed (through merges) to the customer it now belongs to.
    assert Counter((*key(i), owner[i["customer_id"]]) for i in stage_items) == \
        Counter((*key(t), t["customer_id"]) for t in transitions)
    # Each customer's changes (as the customer it was then) in the order stage_transitions has them.
    by_customer: dict[str, list[Key]] = defaultdict(list)
    for item in stage_items:
        by_customer[item["customer_id"]].append(key(item))
    for customer, keys in by_customer.items():
        mine = set(keys)
        assert [key(t) for t in transitions if key(t) in mine] == keys, customer
    # Merges: every absorbed id now belongs to the customer that absorbed it.
    merges = [i for i in feed if i["kind"] == "merge"]
    assert merges, "the workload links ids"
    for merge in merges:
        assert owner[merge["merged_id"]] == owner[merge["customer_id"]]
    assert {owner[m["customer_id"]] for m in merges} == {f"new-user-{n}" for n in range(people)}

    # The same feed on Kafka, keyed by customer.
    on_topic = await changes_on_topic(stack.bootstrap, f"{stack.topic}.changes", set(range(1, changes + 1)))
    assert [on_topic[p] for p in sorted(on_topic)] == feed


async def test_a_journey_filter_keeps_merges_and_erasures(stack: Stack) -> None:
    stack.start_stager()
    stack.start_dispatcher(STAGELINE_PUBLISH_CHANGES="false")
    api = stack.start_api()
    events = person(0, random.Random(5))
    await produce(stack.bootstrap, stack.topic, events)
    await wait_applied(stack.database_url, stack.topic, len(events))
    await wait_relayed(stack.database_url)
    async with stack.client() as client:
        everything = await read_feed(client, api, limit=7)
        shop = await read_feed(client, api, limit=7, journey="shop")
        assert shop == [i for i in everything if i["kind"] != "stage" or i["journey"] == "shop"]
        assert {i["journey"] for i in shop if i["kind"] == "stage"} == {"shop"}
        for bad in ("-1", "abc", "1e3", "99999999999999999999", "\uff11\uff12"):
            answer = await client.get(f"{api}/v1/changes", params={"after": bad})
            assert answer.status_code == 400, bad
            assert answer.json()["code"] == "invalid_cursor"
        unknown = await client.get(f"{api}/v1/changes", params={"journey": "nope"})
        assert unknown.status_code == 404


async def test_after_an_erasure_the_feed_names_the_customer_once_and_nothing_else(stack: Stack) -> None:
    stack.start_stager()
    stack.start_dispatcher(STAGELINE_PUBLISH_CHANGES="false")
    api = stack.start_api()
    rng = random.Random(3)
    alice, bob = person(0, rng), person(1, rng)
    await produce(stack.bootstrap, stack.topic, alice + bob)
    await wait_applied(stack.database_url, stack.topic, len(alice) + len(bob))
    await wait_relayed(stack.database_url)
    alice_ids = {"new-user-0", "user-0", "old-user-0", "anon-0-0", "anon-0-1", "anon-0-2"}
    async with stack.client() as client:
        before = await read_feed(client, api)
        assert any(i["customer_id"] in alice_ids for i in before)
        queued = await client.delete(f"{api}/v1/customers/anon-0-1",
                                     headers={"Authorization": f"Bearer {stack.keys['admin']}"})
        assert queued.status_code == 202, queued.text
        await wait_applied(stack.database_url, stack.topic, len(alice) + len(bob) + 1)
        await produce(stack.bootstrap, stack.topic, [touchpoint("late", 900, "Order Completed", user="user-0")])
        await wait_applied(stack.database_url, stack.topic, len(alice) + len(bob) + 2)
        await wait_relayed(stack.database_url)
        after = await read_feed(client, api)
    erasures = [i for i in after if i["kind"] == "erase"]
    assert len(erasures) == 1
    erasure = erasures[0]
    assert set(erasure) == {"v", "position", "kind", "customer_id", "event_id", "occurred_at", "recorded_at"}
    assert erasure["customer_id"] == "new-user-0"
    rest = [i for i in after if i is not erasure]
    assert not [i for i in rest if {i["customer_id"], i.get("merged_id")} & alice_ids]
    assert rest == [i for i in before if not {i["customer_id"], i.get("merged_id")} & alice_ids]
    assert erasure["position"] > max(i["position"] for i in before)


async def test_the_relay_positions_changes_committed_out_of_id_order(stack: Stack) -> None:
    """A change with a smaller id that commits after a larger one still gets a later position,
    so a reader that already continued past the larger one sees it."""
    stack.start_dispatcher(STAGELINE_PUBLISH_CHANGES="false")
    api = stack.start_api()
    url = plain_url(stack.database_url)
    slow, fast = await asyncpg.connect(url), await asyncpg.connect(url)
    insert = ("INSERT INTO stage_changes (kind, journey, customer_id, to_stage, event_id, occurred_at) "
              "VALUES ('stage', 'shop', $1, 'interest', $1, now()) RETURNING id")
    try:
        await slow.execute("BEGIN")
        slow_id = await slow.fetchval(insert, "slow")
        fast_id = await fast.fetchval(insert, "fast")  # commits at once
        assert slow_id < fast_id
        async with stack.client() as client:
            async def fast_listed() -> bool:
                return [i["customer_id"] for i in await read_feed(client, api)] == ["fast"]
            await wait_for(fast_listed, 20, "the committed change in the feed")
            cursor = (await client.get(f"{api}/v1/changes")).json()["next_cursor"]
            await slow.execute("COMMIT")
            await wait_relayed(stack.database_url)
            later = (await client.get(f"{api}/v1/changes", params={"after": cursor})).json()
        assert [i["customer_id"] for i in later["changes"]] == ["slow"]
    finally:
        await slow.close()
        await fast.close()
