"""Audiences: the customers in a stage, page by page and streamed, equal to a recomputation from
customer_stages; filters, cursors, 404s."""

import csv
import io
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.fixtures.stack import Stack, plain_url

pytestmark = pytest.mark.integration

BASE = datetime(2026, 11, 1, tzinfo=UTC)
STAGES = ["interest", "intent", "purchase"]


async def seed(database_url: str, customers: int) -> None:
    """Stage rows as the stager writes them; whole minutes so many customers share an entered_at,
    and ids with commas, quotes and line breaks for the CSV."""
    rng = random.Random(7)
    rows = []
    for n in range(customers):
        customer = f"c-{n:05d}" if n % 10 else f'c,"{n}"\nx'
        for journey in ("shop", "shop-latest"):
            rows.append((journey, customer, rng.choice(STAGES), BASE + timedelta(minutes=rng.randrange(200))))
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        await conn.copy_records_to_table("customer_stages", records=rows,
                                         columns=("journey", "customer_id", "stage", "entered_at"))
    finally:
        await conn.close()


async def expected(database_url: str, journey: str, stage: str, where: str = "TRUE",
                   *args: Any) -> list[tuple[str, datetime]]:
    """The recomputation: straight from customer_stages, ordered as the API promises."""
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        rows = await conn.fetch(
            f"SELECT customer_id, entered_at FROM customer_stages WHERE journey = $1 AND stage = $2 "
            f"AND {where} ORDER BY entered_at, customer_id", journey, stage, *args)
    finally:
        await conn.close()
    return [(r[0], r[1]) for r in rows]


async def all_pages(client: Any, url: str, **params: Any) -> tuple[list[tuple[str, datetime]], int]:
    seen: list[tuple[str, datetime]] = []
    pages, cursor = 0, None
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        answer = await client.get(url, params=query)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages += 1
        seen += [(c["customer_id"], datetime.fromisoformat(c["entered_at"])) for c in body["customers"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages


async def test_every_page_together_equals_the_stage_recomputed(stack: Stack) -> None:
    await seed(stack.database_url, 3000)
    api = stack.start_api()
    async with stack.client(base_url=api) as client:
        for journey in ("shop", "shop-latest"):
            for stage in STAGES:
                want = await expected(stack.database_url, journey, stage)
                got, pages = await all_pages(client, f"/v1/journeys/{journey}/stages/{stage}/customers",
                                             limit=137)
                assert got == want
                assert pages == len(want) // 137 + 1
        empty = await client.get("/v1/journeys/shop/stages/advocacy/customers")
        assert empty.json() == {"journey": "shop", "stage": "advocacy", "customers": [], "next_cursor": None}


async def test_entered_before_and_after_bound_the_list(stack: Stack) -> None:
    await seed(stack.database_url, 1500)
    api = stack.start_api()
    after, before = BASE + timedelta(minutes=50), BASE + timedelta(minutes=120)
    async with stack.client(base_url=api) as client:
        url = "/v1/journeys/shop/stages/intent/customers"
        got, _ = await all_pages(client, url, limit=50, entered_after=after.isoformat(),
                                 entered_before=before.isoformat())
        assert got == await expected(stack.database_url, "shop", "intent",
                                     "entered_at >= $3 AND entered_at < $4", after, before)
        got, _ = await all_pages(client, url, limit=500, entered_before=before.isoformat())
        assert got == await expected(stack.database_url, "shop", "intent", "entered_at < $3", before)
        naive = await client.get(url, params={"entered_before": "2026-11-01T10:00:00"})
        assert naive.status_code == 422
        assert "time zone" in naive.json()["message"]


async def test_csv_and_ndjson_stream_the_whole_stage(stack: Stack) -> None:
    await seed(stack.database_url, 3000)
    api = stack.start_api()
    want = await expected(stack.database_url, "shop", "purchase")
    async with stack.client(base_url=api) as client:
        url = "/v1/journeys/shop/stages/purchase/customers"
        answer = await client.get(url, headers={"Accept": "text/csv"})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(answer.text)))
        assert rows[0] == ["customer_id", "entered_at"]
        assert [(r[0], datetime.fromisoformat(r[1])) for r in rows[1:]] == want
        answer = await client.get(url, headers={"Accept": "application/x-ndjson"})
        assert answer.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in answer.text.splitlines()]
        assert [(r["customer_id"], datetime.fromisoformat(r["entered_at"])) for r in lines] == want


async def test_unknown_journeys_stages_and_cursors_are_refused(stack: Stack) -> None:
    api = stack.start_api()
    async with stack.client(base_url=api) as client:
        journey = await client.get("/v1/journeys/nope/stages/intent/customers")
        assert journey.status_code == 404
        assert journey.json()["code"] == "unknown_journey"
        stage = await client.get("/v1/journeys/shop/stages/nope/customers")
        assert stage.status_code == 404
        assert stage.json()["code"] == "unknown_stage"
        assert "awareness, interest" in stage.json()["message"]
        for bad in ("garbage", "W10", "WyIyMDI2IiwgMV0", "x" * 5000):
            answer = await client.get("/v1/journeys/shop/stages/intent/customers", params={"cursor": bad})
            assert answer.status_code == 400, bad
            assert answer.json()["code"] == "invalid_cursor"
        for params in ({"limit": 0}, {"limit": 1001}, {"entered_before": "yesterday"}):
            answer = await client.get("/v1/journeys/shop/stages/intent/customers", params=params)
            assert answer.status_code == 422, params
