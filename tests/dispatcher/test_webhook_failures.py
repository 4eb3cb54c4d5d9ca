"""Webhooks that fail: retried on the schedule and after Retry-After, redirects not followed,
refused addresses not dialled, 410 and a spent schedule disabling the endpoint."""

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.fixtures.events import post_events
from tests.fixtures.feed import fetch
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
    wait_disabled,
)

pytestmark = pytest.mark.integration


async def test_two_failures_then_success_is_three_attempts_with_one_id(stack: Stack, tmp_path: Path) -> None:
    ingest, api = stack.start_ingest(), stack.start_api()
    stack.start_stager()
    stack.start_dispatcher(**FAST)
    endpoint, receiver = await register(stack, api, tmp_path, journeys=["shop"])  # one change
    try:
        await receiver.plan(answers=[500, 500], then=200)
        await ingest_events(stack, ingest, customers=1, events=1, seed=2)
        expected = {m: c for m, c in (await expected_messages(stack.database_url)).items()
                    if c["journey"] == "shop"}
        assert len(expected) == 1
        seen = await wait_delivered(receiver, set(expected))
        assert [r["status"] for r in seen] == [500, 500, 200]
        assert {r["id"] for r in seen} == set(expected)
        assert seen[1]["start"] - seen[0]["start"] >= 0.2  # the schedule's first wait
        check_received(seen, expected)
        async with httpx.AsyncClient(timeout=30) as client:
            [delivery] = (await client.get(f"{api}/v1/admin/webhooks/{endpoint['id']}/deliveries",
                                           headers=admin(stack))).json()["deliveries"]
        assert (delivery["status"], delivery["attempts"], delivery["last_status"]) == ("delivered", 3, 200)
    finally:
        receiver.stop()


async def test_retry_after_is_honoured(stack: Stack, tmp_path: Path) -> None:
    ingest, api = stack.start_ingest(), stack.start_api()
    stack.start_stager()
    stack.start_dispatcher(**FAST)
    _, receiver = await register(stack, api, tmp_path, journeys=["shop"])
    try:
        await receiver.plan(answers=[503], then=200, retry_after=2)
        await ingest_events(stack, ingest, customers=1, events=1, seed=3)
        expected = {m for m, c in (await expected_messages(stack.database_url)).items()
                    if c["journey"] == "shop"}
        seen = await wait_delivered(receiver, expected)
        assert [r["status"] for r in seen] == [503, 200]
        assert seen[1]["start"] - seen[0]["start"] >= 2.0
    finally:
        receiver.stop()


async def test_410_disables_the_endpoint(stack: Stack, tmp_path: Path) -> None:
    ingest, api = stack.start_ingest(), stack.start_api()
    stack.start_stager()
    dispatcher = stack.start_dispatcher(**FAST)
    endpoint, receiver = await register(stack, api, tmp_path)
    try:
        await receiver.plan(then=410)
        await ingest_events(stack, ingest, customers=5, events=20, seed=7)
        await wait_disabled(stack, api, endpoint["id"])
        state = await endpoint_state(stack, api, endpoint["id"])
        assert "410" in state["disabled_reason"]
        await asyncio.sleep(1)
        assert len({r["id"] for r in await receiver.received()}) <= 5  # heads only, then nothing
        async with httpx.AsyncClient(timeout=30) as client:
            metrics = (await client.get(f"{dispatcher.base_url}/metrics")).text
        assert metric(metrics, "stageline_webhook_endpoint_disables_total", reason="gone") == 1
    finally:
        receiver.stop()


async def test_an_endpoint_failing_past_the_schedule_is_disabled_and_can_be_enabled(
    stack: Stack, tmp_path: Path
) -> None:
    ingest, api = stack.start_ingest(), stack.start_api()
    stack.start_stager()
    schedule = FAST | {"STAGELINE_WEBHOOK_RETRY_SCHEDULE_S": "0.1,0.1"}
    dispatcher = stack.start_dispatcher(**schedule)
    endpoint, receiver = await register(stack, api, tmp_path)
    try:
        await receiver.plan(then=500)
        await ingest_events(stack, ingest, customers=1, events=3, seed=8)
        await wait_disabled(stack, api, endpoint["id"])
        assert [r["status"] for r in await receiver.received()] == [500, 500, 500]
        assert "past the retry schedule" in (await endpoint_state(stack, api, endpoint["id"]))["disabled_reason"]
        assert dispatcher.log_file is not None
        assert "disabled: delivery failed 3 times" in dispatcher.log_file.read_text()
        async with httpx.AsyncClient(timeout=30) as client:
            metrics = (await client.get(f"{dispatcher.base_url}/metrics")).text
            assert metric(metrics, "stageline_webhook_endpoint_disables_total", reason="failing") == 1
            assert metric(metrics, "stageline_webhook_deliveries_total", endpoint=endpoint["id"],
                          outcome="given_up") == 1
            # Enabled again, the customer's later changes go out (the given-up one does not).
            await receiver.plan(then=200)
            enabled = await client.post(f"{api}/v1/admin/webhooks/{endpoint['id']}/enable",
                                        headers=admin(stack))
            assert enabled.status_code == 200 and enabled.json()["disabled_at"] is None
        expected = await expected_messages(stack.database_url)
        later = set(sorted(expected, key=lambda m: int(m[4:]))[1:])
        await wait_delivered(receiver, later)
    finally:
        receiver.stop()


async def test_redirects_are_not_followed_and_refused_addresses_not_dialled(stack: Stack, tmp_path: Path) -> None:
    """A 302 is a failed attempt (retried, never followed); a dispatcher that does not allow
    loopback refuses to connect to the receiver, whatever the API accepted."""
    ingest, api = stack.start_ingest(), stack.start_api()
    stack.start_stager()
    _, receiver = await register(stack, api, tmp_path, journeys=["shop"])
    strict = stack.start_dispatcher(**FAST, STAGELINE_WEBHOOK_ALLOW="")
    try:
        async with stack.client() as client:
            await post_events(client, ingest, [{"event_id": "click-1", "customer_id": "clicker",
                                                "event": "Ad Clicked"}], stack.write_key)
        await wait_applied(stack.database_url, stack.topic, 1)

        async def refused() -> bool:
            rows = await fetch(stack.database_url, "SELECT last_error FROM webhook_deliveries")
            return bool(rows) and rows[0][0] is not None
        await wait_for(refused, 30, "an attempt on the refused address")
        [row] = await fetch(stack.database_url, "SELECT last_error, last_status FROM webhook_deliveries")
        assert row["last_status"] is None
        assert "127.0.0.1 is a loopback address" in row["last_error"]
        assert await receiver.received() == []
        strict.stop()
        await receiver.plan(answers=[302], then=200)
        stack.start_dispatcher(**FAST)
        expected = {m for m, c in (await expected_messages(stack.database_url)).items() if c["journey"] == "shop"}
        seen = await wait_delivered(receiver, expected)
        assert [r["status"] for r in seen] == [302, 200]
    finally:
        receiver.stop()
