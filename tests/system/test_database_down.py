"""Postgres down or out of reach: ingest and the API answer 503 with Retry-After, never a 500."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from stageline_api.app import create_app as create_api
from stageline_api.settings import ApiSettings
from stageline_devstack.broker import Broker
from stageline_devstack.ports import free_port
from stageline_ingest.app import create_app as create_ingest
from stageline_ingest.settings import IngestSettings
from stageline_shared.database import make_engine
from tests.fixtures.keys import create_keys
from tests.fixtures.polling import metric

pytestmark = pytest.mark.integration

NOWHERE = "postgresql://postgres@127.0.0.1:{port}/stageline"  # a port nothing listens on


async def _client(app: FastAPI, key: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with (app.router.lifespan_context(app),
                httpx.AsyncClient(transport=transport, base_url="http://test",
                                  headers={"Authorization": f"Bearer {key}"}) as client):
        yield client


def assert_database_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "database_unavailable"
    assert response.headers["retry-after"] == "5"


async def test_ingest_answers_503_when_it_cannot_check_the_key(broker: Broker, topic: str) -> None:
    settings = IngestSettings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers, topic=topic,
                              topic_partitions=2, DATABASE_URL=NOWHERE.format(port=free_port()))
    async for client in _client(create_ingest(settings), "any-write-key"):
        response = await client.post("/v1/events", json={"customer_id": "c-1", "event": "Viewed"})
        assert_database_unavailable(response)
        assert dependencies_up((await client.get("/metrics")).text) == {"broker": 1, "database": 0}


async def test_api_answers_503_while_the_database_is_unreachable_then_recovers(
    broker: Broker, topic: str, database_url: str, journeys_file: Path
) -> None:
    keys = await create_keys(database_url)
    settings = ApiSettings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers, topic=topic,
                           DATABASE_URL=database_url, journeys_file=journeys_file)
    app = create_api(settings)
    async for client in _client(app, keys["read"]):
        listed = await client.get("/v1/journeys")
        assert listed.status_code == 200, listed.text
        journey = listed.json()["journeys"][0]["name"]
        counts = f"/v1/journeys/{journey}/stages"
        assert (await client.get(counts)).status_code == 200  # the read key is now cached
        assert dependencies_up((await client.get("/metrics")).text) == {"broker": 1, "database": 1}
        working = app.state.db
        app.state.db = make_engine(NOWHERE.format(port=free_port()))
        try:
            for path in (counts, "/v1/customers/c-1", "/v1/customers/c-1/timeline"):
                assert_database_unavailable(await client.get(path))
            # Measured at the scrape itself: the alert needs no failing request to fire.
            assert dependencies_up((await client.get("/metrics")).text) == {"broker": 1, "database": 0}
        finally:
            await app.state.db.dispose()
            app.state.db = working
        assert (await client.get(counts)).status_code == 200
        assert dependencies_up((await client.get("/metrics")).text) == {"broker": 1, "database": 1}


def dependencies_up(metrics: str) -> dict[str, float]:
    """stageline_dependency_up by dependency, as /metrics reports it."""
    return {name: metric(metrics, "stageline_dependency_up", dependency=name)
            for name in ("broker", "database")}
