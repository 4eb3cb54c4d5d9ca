"""Real Segment-protocol SDKs nobody here wrote, pointed at ingest: their calls land on the timeline.

analytics-python (Segment), rudder-sdk-python (RudderStack; gzip on by default) and
@segment/analytics-node, run with the machine's node from tests/sdk/node (`make test` runs
`npm ci` there first).
"""

import asyncio
import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import rudderstack.analytics as rudder_analytics
import segment.analytics as analytics

from tests.fixtures.polling import metric, touchpoints_of, wait_applied
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.integration

NODE_DIR = Path(__file__).parents[1] / "sdk" / "node"
# Each SDK: a page view before login (anonymousId only), identify linking it to the userId, an
# order, and an alias from an old user id. Stitched, all four belong to the userId's customer.
EXPECTED = {"Identified", "Order Completed", "Page Viewed", "Alias"}


async def _assert_landed(stack: Stack, ingest: str, api: str, user_id: str) -> None:
    async with stack.client() as client:
        metrics = (await client.get(f"{ingest}/metrics")).text
        assert metric(metrics, "stageline_ingest_events_accepted_total") == len(EXPECTED), metrics
        await wait_applied(stack.database_url, stack.topic, len(EXPECTED))
        touchpoints = await touchpoints_of(client, api, user_id)
        profile = (await client.get(f"{api}/v1/customers/{user_id}-device",
                                    params={"journey": "shop"})).json()
        counts = (await client.get(f"{api}/v1/journeys/shop/stages")).json()
    assert {t["event"] for t in touchpoints} == EXPECTED, touchpoints
    assert profile["customer_id"] == user_id
    assert profile["aliases"] == sorted([f"{user_id}-device", f"{user_id}-old"])
    assert profile["stages"][0]["stage"] == "purchase"
    assert counts["total"] == 1  # one person, counted once
    [page] = [t for t in touchpoints if t["event"] == "Page Viewed"]
    assert page["properties"]["name"] == "Pricing"
    [order] = [t for t in touchpoints if t["event"] == "Order Completed"]
    assert order["properties"]["total"] == 42.5


def _send_python(client: Any, user_id: str) -> None:
    """The same four calls in either Python SDK (their signatures match), then flush."""
    device = f"{user_id}-device"
    client.page(anonymous_id=device, category="Docs", name="Pricing",
                properties={"url": "https://shop.example/pricing"})
    client.identify(user_id, {"plan": "pro"}, anonymous_id=device)
    client.track(user_id, "Order Completed", {"total": 42.5})
    client.alias(f"{user_id}-old", user_id)
    client.flush()
    client.shutdown()


async def test_segment_analytics_python(stack: Stack) -> None:
    ingest = stack.start_ingest()
    stack.start_stager()
    api = stack.start_api()
    user_id = f"py-{uuid.uuid4().hex[:8]}"
    errors: list[str] = []
    client = analytics.Client(
        write_key=stack.write_key, host=ingest, gzip=True, max_retries=1,
        on_error=lambda error, batch: errors.append(f"{error} ({len(batch)} messages)"),
    )
    await asyncio.to_thread(_send_python, client, user_id)
    assert errors == []
    await _assert_landed(stack, ingest, api, user_id)


async def test_rudder_sdk_python(stack: Stack) -> None:
    ingest = stack.start_ingest()
    stack.start_stager()
    api = stack.start_api()
    user_id = f"rudder-{uuid.uuid4().hex[:8]}"
    errors: list[str] = []
    client = rudder_analytics.Client(
        stack.write_key, host=ingest, max_retries=1,  # host is the data plane URL; gzip by default
        on_error=lambda error, batch: errors.append(f"{error} ({len(batch)} messages)"),
    )
    assert client.gzip is True
    await asyncio.to_thread(_send_python, client, user_id)
    assert errors == []
    await _assert_landed(stack, ingest, api, user_id)


async def test_segment_analytics_node(stack: Stack) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the @segment/analytics-node check needs Node.js >= 18 "
                    "(apt-get install nodejs npm), then `npm ci --prefix tests/sdk/node`")
    if not (NODE_DIR / "node_modules" / "@segment" / "analytics-node").is_dir():
        pytest.fail(f"@segment/analytics-node is not installed in {NODE_DIR}: run "
                    "`npm ci --prefix tests/sdk/node` (`make test` does)")
    ingest = stack.start_ingest()
    stack.start_stager()
    api = stack.start_api()
    user_id = f"node-{uuid.uuid4().hex[:8]}"
    result = await asyncio.to_thread(
        subprocess.run, [node, "send.mjs", ingest, stack.write_key, user_id], cwd=NODE_DIR,
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == [] and report["statuses"] and set(report["statuses"]) == {200}, report
    await _assert_landed(stack, ingest, api, user_id)

