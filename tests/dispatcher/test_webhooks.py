"""Webhooks against real parts: a receiver process verifying every signature with the
standardwebhooks package, the real broker, Postgres and service processes, and real faults."""

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.fixtures.events import post_events
from tests.fixtures.feed import fetch, wait_relayed
from tests.fixtures.polling import metric, wait_applied, wait_for
from tests.fixtures.stack import Stack
from tests.fixtures.webhooks import (
    FAST,
    admin,
    check_received,
    endpoint_state,
    expected_messages,
    ingest_events,
    register,
    wait_delivered,
)

pytestmark = pytest.mark.integration


async def test_every_change_arrives_signed_once_and_in_order_per_customer(stack: Stack, tmp_path: Path) -> None:
    ingest, api = stack.start_ingest(), stack.start_api()
    stack.start_stager()
    dispatcher = stack.start_dispatcher(**FAST)
    endpoint, receiver = await register(stack, api, tmp_path, description="CRM")
    try:
        await ingest_events(stack, ingest, customers=40, events=400, seed=1)
        expected = await expected_messages(stack.database_url)
        seen = await wait_delivered(receiver, set(expected))
        check_received(seen, expected)
        assert len(seen) == len(expected)  # a receiver answering 200 gets each change once
        payload = seen[0]["payload"]
        assert payload["type"] == "customer.stage_changed"
        assert payload["timestamp"] == payload["data"]["recorded_at"]
        async with httpx.AsyncClient(timeout=30) as client:
            deliveries = (await client.get(f"{api}/v1/admin/webhooks/{endpoint['id']}/deliveries",
                                           headers=admin(stack), params={"limit": 500})).json()
            metrics = (await client.get(f"{dispatcher.base_url}/metrics")).text
        assert len(deliveries["deliveries"]) == len(expected)
        assert {d["status"] for d in deliveries["deliveries"]} == {"delivered"}
        assert all(d["attempts"] == 1 and d["last_status"] == 200 and d["latency_ms"] >= 0
                   for d in deliveries["deliveries"])
        assert metric(metrics, "stageline_webhook_deliveries_total", endpoint=endpoint["id"],
                      outcome="delivered") == len(expected)
    finally:
        receiver.stop()


async def test_a_receiver_down_for_a_while_gets_everything_once_back(stack: Stack, tmp_path: Path) -> None:
    ingest, api = stack.start_ingest(), stack.start_api()
    stack.start_stager()
    stack.start_dispatcher(**FAST)
    endpoint, receiver = await register(stack, api, tmp_path, start=False)
    try:
        await ingest_events(stack, ingest, customers=20, events=150, seed=4)
        await asyncio.sleep(3)  # several failed attempts against the closed port
        failed = await fetch(stack.database_url, "SELECT count(*) FROM webhook_deliveries "
                                                 "WHERE attempts > 1 AND status = 'pending'")
        assert failed[0][0] > 0
        receiver.start()
        expected = await expected_messages(stack.database_url)
        seen = await wait_delivered(receiver, set(expected))
        check_received(seen, expected)
        assert (await endpoint_state(stack, api, endpoint["id"]))["disabled_at"] is None
    finally:
        receiver.stop()


async def test_kill_9_of_the_dispatcher_mid_stream_loses_nothing(stack: Stack, tmp_path: Path) -> None:
    ingest, api = stack.start_ingest(), stack.start_api()
    stack.start_stager()
    first = stack.start_dispatcher(**FAST, STAGELINE_WEBHOOK_CONCURRENCY="4")
    _, receiver = await register(stack, api, tmp_path)
    try:
        await receiver.plan(delay_s=0.05)
        await ingest_events(stack, ingest, customers=30, events=300, seed=5)
        expected = await expected_messages(stack.database_url)

        async def some_delivered() -> bool:
            return len(await receiver.received()) >= len(expected) // 4
        await wait_for(some_delivered, 60, "a quarter of the deliveries")
        first.kill()
        stack.start_dispatcher(**FAST)
        seen = await wait_delivered(receiver, set(expected))
        check_received(seen, expected)
        assert len(seen) < len(expected) + 10  # only what was in flight at the kill came twice
    finally:
        receiver.stop()


async def test_two_dispatchers_share_the_work_without_sending_a_change_twice_at_once(
    stack: Stack, tmp_path: Path
) -> None:
    ingest, api = stack.start_ingest(), stack.start_api()
    stack.start_stager()
    dispatchers = [stack.start_dispatcher(**FAST, STAGELINE_WEBHOOK_CONCURRENCY="8") for _ in range(2)]
    endpoint, receiver = await register(stack, api, tmp_path)
    try:
        await receiver.plan(delay_s=0.02)
        await ingest_events(stack, ingest, customers=40, events=400, seed=6)
        expected = await expected_messages(stack.database_url)
        seen = await wait_delivered(receiver, set(expected))
        check_received(seen, expected)
        assert len(seen) == len(expected)
        async with httpx.AsyncClient(timeout=30) as client:
            attempts = [metric((await client.get(f"{d.base_url}/metrics")).text,
                               "stageline_webhook_attempts_total", endpoint=endpoint["id"])
                        for d in dispatchers]
        assert sum(attempts) == len(expected)
        assert all(a > 0 for a in attempts), attempts  # both took a share
    finally:
        receiver.stop()


async def test_a_rotated_secret_signs_beside_the_old_one_for_the_grace_period(
    stack: Stack, tmp_path: Path
) -> None:
    ingest, api = stack.start_ingest(), stack.start_api()
    stack.start_stager()
    stack.start_dispatcher(**FAST)
    endpoint, receiver = await register(stack, api, tmp_path, start=False)
    async with httpx.AsyncClient(timeout=30) as client:
        rotated = (await client.post(f"{api}/v1/admin/webhooks/{endpoint['id']}/rotate-secret",
                                     headers=admin(stack), params={"grace_seconds": 4})).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != endpoint["secret"]
    receiver.secrets = [endpoint["secret"], rotated["secret"]]
    receiver.start()
    records: list[int] = []

    async def one_change(customer: str) -> dict:
        event = {"event_id": f"{customer}-1", "customer_id": customer, "event": "Ad Clicked"}
        async with stack.client() as client:
            sent = await post_events(client, ingest, [event], stack.write_key)
        records.append(sent)
        await wait_applied(stack.database_url, stack.topic, sum(records))
        await wait_relayed(stack.database_url)
        expected = {m for m, c in (await expected_messages(stack.database_url)).items()
                    if c["customer_id"] == customer}
        assert len(expected) == 2  # both journeys
        return next(r for r in await wait_delivered(receiver, expected) if r["id"] in expected)

    try:
        during = await one_change("rotating")
        assert during["verified"] == [True, True]
        assert len(during["signature"].split(" ")) == 2
        await asyncio.sleep(5)  # past the grace period
        after = await one_change("rotated")
        assert after["verified"] == [False, True]  # the old secret has expired
        assert len(after["signature"].split(" ")) == 1
    finally:
        receiver.stop()


async def test_filters_choose_the_changes_and_replay_sends_them_again(stack: Stack, tmp_path: Path) -> None:
    ingest, api = stack.start_ingest(), stack.start_api()
    stack.start_stager()
    stack.start_dispatcher(**FAST)
    endpoint, receiver = await register(stack, api, tmp_path, journeys=["shop"], to_stages=["purchase"])
    try:
        await ingest_events(stack, ingest, customers=30, events=300, seed=11)
        rows = await fetch(stack.database_url, "SELECT position FROM stage_changes WHERE kind = 'stage' "
                                               "AND journey = 'shop' AND to_stage = 'purchase'")
        wanted = {f"msg_{r[0]}" for r in rows}
        assert wanted
        seen = await wait_delivered(receiver, wanted)
        await asyncio.sleep(1)
        seen = await receiver.received()
        assert {r["id"] for r in seen} == wanted
        assert {(r["payload"]["data"]["journey"], r["payload"]["data"]["to_stage"]) for r in seen} == \
            {("shop", "purchase")}
        async with httpx.AsyncClient(timeout=30) as client:
            replayed = await client.post(f"{api}/v1/admin/webhooks/{endpoint['id']}/replay",
                                         headers=admin(stack), params={"since": "2000-01-01T00:00:00Z"})
        assert replayed.status_code == 202
        assert replayed.json() == {"id": endpoint["id"], "queued": len(wanted)}

        async def twice() -> bool:
            ids = [r["id"] for r in await receiver.received() if r["status"] == 200]
            return sorted(ids) == sorted([*wanted, *wanted])
        await wait_for(twice, 60, "every change delivered a second time")
    finally:
        receiver.stop()
