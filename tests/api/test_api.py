"""The read API against real data: 404s, pagination, customer view, OpenAPI."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fixtures.events import post_events
from tests.fixtures.polling import wait_applied
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.integration


def journey_events(customer: str) -> list[dict[str, Any]]:
    """Ad click → product view → order → second order, one minute apart, plus a review read."""
    base = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    names = ["Ad Clicked", "Product Viewed", "Order Completed", "Review Read", "Order Completed"]
    return [
        {"event_id": f"{customer}-{i}", "customer_id": customer, "event": name,
         "occurred_at": (base + timedelta(minutes=i)).isoformat()}
        for i, name in enumerate(names)
    ]


@pytest.fixture
async def populated(stack: Stack) -> tuple[str, list[dict[str, Any]]]:
    ingest = stack.start_ingest()
    stack.start_stager()
    api = stack.start_api()
    events = journey_events("alice") + journey_events("bob")[:2] + [
        {"event_id": "carol-0", "customer_id": "carol", "event": "Matches No Rule",
         "occurred_at": "2026-11-01T12:00:00+00:00"}]
    async with stack.client() as client:
        await post_events(client, ingest, events, stack.write_key, batch=3)
    await wait_applied(stack.database_url, stack.topic, len(events))
    return api, events


async def test_journeys_and_counts(stack: Stack, populated: tuple[str, list[dict[str, Any]]]) -> None:
    api, _ = populated
    async with stack.client(base_url=api) as client:
        journeys = (await client.get("/v1/journeys")).json()["journeys"]
        assert [j["name"] for j in journeys] == ["shop", "shop-latest"]
        assert journeys[0]["stages"][0] == "awareness"
        counts = (await client.get("/v1/journeys/shop/stages")).json()
        as_dict = {s["stage"]: s["customers"] for s in counts["stages"]}
        assert as_dict["loyalty"] == 1 and as_dict["interest"] == 1 and counts["total"] == 2
        latest = (await client.get("/v1/journeys/shop-latest/stages")).json()
        as_dict = {s["stage"]: s["customers"] for s in latest["stages"]}
        assert as_dict["loyalty"] == 1 and as_dict["interest"] == 1


async def test_customer_view(stack: Stack, populated: tuple[str, list[dict[str, Any]]]) -> None:
    api, _ = populated
    async with stack.client(base_url=api) as client:
        body = (await client.get("/v1/customers/alice", params={"journey": "shop"})).json()
        assert body["stages"] == [
            {"journey": "shop", "stage": "loyalty", "entered_at": "2026-11-01T12:04:00Z"}
        ]
        assert body["last_touchpoint"]["event_id"] == "alice-4"
        both = (await client.get("/v1/customers/alice")).json()
        assert [s["journey"] for s in both["stages"]] == ["shop", "shop-latest"]
        # Known (touchpoints stored) but in no stage yet: every journey listed, stage null.
        carol = (await client.get("/v1/customers/carol")).json()
        assert carol["stages"] == [{"journey": "shop", "stage": None, "entered_at": None},
                                   {"journey": "shop-latest", "stage": None, "entered_at": None}]
        assert carol["last_touchpoint"]["event_id"] == "carol-0"


async def test_timeline_pages_with_cursor(stack: Stack, populated: tuple[str, list[dict[str, Any]]]) -> None:
    api, _ = populated
    async with stack.client(base_url=api) as client:
        items: list[dict[str, Any]] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 2, "journey": "shop"}
            if cursor:
                params["cursor"] = cursor
            body = (await client.get("/v1/customers/alice/timeline", params=params)).json()
            items += body["items"]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        whole = (await client.get("/v1/customers/alice/timeline",
                                  params={"journey": "shop"})).json()["items"]
    assert items == whole
    assert pages == (len(whole) + 1) // 2
    touchpoints = [i["event_id"] for i in whole if i["type"] == "touchpoint"]
    assert touchpoints == [f"alice-{i}" for i in range(5)]
    changes = [(i["from_stage"], i["to_stage"]) for i in whole if i["type"] == "stage_changed"]
    assert changes == [(None, "awareness"), ("awareness", "interest"), ("interest", "purchase"),
                       ("purchase", "loyalty")]


# One populated stack for every case (setting one up takes ~8 s).
ERROR_CASES: list[tuple[str, dict[str, Any], int, str]] = [
    ("/v1/journeys/nope/stages", {}, 404, "unknown_journey"),
    ("/v1/customers/nobody", {}, 404, "unknown_customer"),
    ("/v1/customers/nobody/timeline", {}, 404, "unknown_customer"),
    ("/v1/customers/alice", {"journey": "nope"}, 404, "unknown_journey"),
    ("/v1/customers/alice/timeline", {"limit": 501}, 422, "invalid_request"),
    ("/v1/customers/alice/timeline", {"limit": "ten"}, 422, "invalid_request"),
    ("/v1/customers/alice/timeline", {"cursor": "not-a-cursor"}, 400, "invalid_cursor"),
    ("/v1/nothing-here", {}, 404, "not_found"),
]


async def test_errors_are_json(stack: Stack, populated: tuple[str, list[dict[str, Any]]]) -> None:
    api, _ = populated
    async with stack.client(base_url=api) as client:
        for path, params, status, code in ERROR_CASES:
            response = await client.get(path, params=params)
            assert response.status_code == status, (path, params, response.text)
            assert response.json()["code"] == code, (path, params, response.text)


async def test_openapi_health_and_metrics(stack: Stack, populated: tuple[str, list[dict[str, Any]]]) -> None:
    api, _ = populated
    async with stack.client(base_url=api) as client:
        spec = (await client.get("/openapi.json")).json()
        assert "/v1/journeys/{journey}/stages" in spec["paths"]
        assert (await client.get("/docs")).status_code == 200
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.json() == {"ready": True, "checks": {"broker": True, "database": True}}
        assert (await client.get("/v1/journeys/shop/stages")).status_code == 200
        assert (await client.get("/v1/journeys/nope/stages")).status_code == 404
        metrics = (await client.get("/metrics")).text
        assert 'route="/v1/journeys/{journey}/stages"' in metrics
        assert "nope" not in metrics  # labels are route templates, never raw paths
