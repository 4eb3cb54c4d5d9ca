"""Data migrations keep what the stager stored: 0004 folds per-journey rule state into one
customer_progress document per customer, 0005 turns the document's times into microseconds,
and both go back again on downgrade."""

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest
from alembic import command

from stageline_devstack.databases import drop_database, ensure_database
from stageline_shared.migrate import alembic_config
from stageline_stager.engine import CustomerState, micros
from stageline_stager.repository.progress import lock_progress
from tests.fixtures.stack import plain_url

pytestmark = pytest.mark.integration

AT = datetime(2026, 10, 1, 12, 30, 0, 250_000, tzinfo=UTC)
LATER = datetime(2026, 10, 2, tzinfo=UTC)
# (journey, customer, stage, entered_at, last_event_id, last_touchpoint_at, counts, latest)
ROWS_0003 = [
    ("shop", "c-1", "purchase", AT, "e-2", LATER, '{"purchase#1": 2, "awareness#1": 1}',
     '{"purchase#1": ["2026-10-02T00:00:00+00:00", "e-2"], "awareness#1": '
     '["2026-10-01T12:30:00.250000+00:00", "e-1"]}'),
    ("shop-latest", "c-1", None, None, "e-2", LATER, "{}", "{}"),
    ("shop", "c-2", None, None, "e-3", AT, '{"interest#1": 1}',
     '{"interest#1": ["2026-10-01T12:30:00.250000+00:00", "e-3"]}'),
]
_SELECT_0003 = """
    SELECT journey, customer_id, stage, entered_at, last_event_id, last_touchpoint_at,
           rule_counts::jsonb AS counts, rule_latest::jsonb AS latest
    FROM customer_stages ORDER BY journey, customer_id
"""


@pytest.fixture
def empty_database(pg_server: str) -> Iterator[str]:
    name = f"stageline_m_{uuid.uuid4().hex[:8]}"
    yield ensure_database(pg_server, name)
    asyncio.run(drop_database(pg_server, name))


async def _run(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(plain_url(url))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _progress(url: str) -> dict[str, dict[str, CustomerState]]:
    conn = await asyncpg.connect(plain_url(url))
    try:
        async with conn.transaction():
            return await lock_progress(conn, ["c-1", "c-2"])
    finally:
        await conn.close()


async def _documents(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(plain_url(url))
    try:
        rows = await conn.fetch("SELECT customer_id, state::text FROM customer_progress")
        return {row[0]: orjson.loads(row[1]) for row in rows}
    finally:
        await conn.close()


def _old_entry(stage: str | None, entered_at: datetime | None, last_at: datetime | None,
               last_id: str | None, counts: dict[str, int], latest: dict[str, Any]) -> list[Any]:
    """A 0004 document's entry, times compared as instants whatever offset Postgres wrote."""
    return [stage, entered_at, last_at, last_id, counts, latest]


def _instants(document: dict[str, Any]) -> dict[str, Any]:
    def at(text: str | None) -> datetime | None:
        return None if text is None else datetime.fromisoformat(text)
    return {journey: _old_entry(stage, at(entered), at(last_at), last_id, counts,
                                {rule: [at(when), event_id] for rule, (when, event_id) in latest.items()})
            for journey, (stage, entered, last_at, last_id, counts, latest) in document.items()}


def test_0004_and_0005_move_rule_state_into_customer_progress_and_back(empty_database: str) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "0003")
    asyncio.run(_run(empty_database, """
        INSERT INTO customer_stages (journey, customer_id, stage, entered_at, last_event_id,
                                     last_touchpoint_at, rule_counts, rule_latest)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[],
                             $6::timestamptz[], $7::json[], $8::json[])
    """, *[list(column) for column in zip(*ROWS_0003, strict=True)]))
    before = asyncio.run(_run(empty_database, _SELECT_0003))

    command.upgrade(config, "0004")
    stages = asyncio.run(_run(empty_database,
                              "SELECT journey, customer_id, stage, entered_at FROM customer_stages"))
    assert [tuple(r) for r in stages] == [("shop", "c-1", "purchase", AT)]  # staged rows only
    documents_0004 = {customer: _instants(document)
                      for customer, document in asyncio.run(_documents(empty_database)).items()}
    assert documents_0004 == {
        "c-1": {
            "shop": _old_entry("purchase", AT, LATER, "e-2", {"purchase#1": 2, "awareness#1": 1},
                               {"purchase#1": [LATER, "e-2"], "awareness#1": [AT, "e-1"]}),
            "shop-latest": _old_entry(None, None, LATER, "e-2", {}, {}),
        },
        "c-2": {"shop": _old_entry(None, None, AT, "e-3", {"interest#1": 1},
                                   {"interest#1": [AT, "e-3"]})},
    }

    command.upgrade(config, "0005")
    assert asyncio.run(_progress(empty_database)) == {
        "c-1": {
            "shop": CustomerState(
                stage="purchase", entered_at=micros(AT), rule_counts={"purchase#1": 2, "awareness#1": 1},
                rule_latest={"purchase#1": (micros(LATER), "e-2"), "awareness#1": (micros(AT), "e-1")}),
            "shop-latest": CustomerState(),
        },
        "c-2": {"shop": CustomerState(rule_counts={"interest#1": 1},
                                      rule_latest={"interest#1": (micros(AT), "e-3")})},
    }

    command.downgrade(config, "0004")  # the same documents, without the last-touchpoint fields
    assert {customer: _instants(document)
            for customer, document in asyncio.run(_documents(empty_database)).items()} == {
        customer: {journey: [*entry[:2], None, None, *entry[4:]] for journey, entry in document.items()}
        for customer, document in documents_0004.items()
    }

    command.downgrade(config, "0003")
    assert [_latest_instants(row) for row in asyncio.run(_run(empty_database, _SELECT_0003))] == [
        (*_latest_instants(row)[:4], None, None, *_latest_instants(row)[6:]) for row in before
    ]


def _latest_instants(row: asyncpg.Record) -> tuple[Any, ...]:
    latest = {rule: [datetime.fromisoformat(at), event_id]
              for rule, (at, event_id) in orjson.loads(row["latest"]).items()}
    return (*tuple(row)[:-1], latest)
