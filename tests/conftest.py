"""Session fixtures: one real Tansu broker and one real Postgres server for the whole run.

Each test gets its own database (cloned from a migrated template) and its own topic, so exact
counts never see another test's events.
"""

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

# Imported here, at a shallow stack: hypothesis's pytest plugin otherwise imports its internals
# lazily in pytest_terminal_summary, where CPython 3.11.7's parser can fail with "SystemError: AST
# constructor recursion depth mismatch" (fixed in 3.11.8) after a run without hypothesis tests.
import hypothesis.internal.observability  # noqa: F401
import pytest

from stageline_devstack.broker import Broker
from stageline_devstack.databases import drop_database, ensure_database
from stageline_devstack.ports import free_port
from stageline_devstack.postgres import EmbeddedPostgres
from stageline_shared.migrate import upgrade
from tests.integration.support import Stack, create_keys


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A real Kafka-protocol broker (Tansu, memory storage) for the session."""
    log_file = tmp_path_factory.mktemp("broker") / "broker.log"
    started = Broker(free_port(), log_file).start()
    yield started
    started.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """DATABASE_URL's server when configured, else an embedded PostgreSQL 18."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    # Not under pytest's 0700 temp tree: the server runs as its own user when we are root.
    data_dir = Path(tempfile.mkdtemp(prefix="stageline-pg-")) / "data"
    server = EmbeddedPostgres(data_dir, delete_on_stop=True).start()
    yield server.url()
    server.stop()
    shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_server: str) -> Iterator[str]:
    """A database migrated once with Alembic; tests clone it."""
    name = f"stageline_tpl_{uuid.uuid4().hex[:8]}"
    upgrade(ensure_database(pg_server, name))
    yield name
    asyncio.run(drop_database(pg_server, name))


@pytest.fixture
def database_url(pg_server: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    name = f"stageline_t_{uuid.uuid4().hex[:8]}"
    url = ensure_database(pg_server, name, template=template_db)
    yield url
    asyncio.run(drop_database(pg_server, name))


@pytest.fixture
def topic() -> str:
    return f"touchpoints-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def journeys_file() -> Path:
    return Path(__file__).parent / "integration" / "journeys.yaml"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that ran services shows the end of each service's log in its report: the
    processes are gone by the time anyone reads it."""
    report = yield
    services = getattr(item, "funcargs", {}).get("stack")
    if report.failed and isinstance(services, Stack):
        for name, tail in services.log_tails():
            report.sections.append((f"log of {name} (last lines)", tail))
    return report


@pytest.fixture
def stack(
    broker: Broker, database_url: str, topic: str, journeys_file: Path, tmp_path: Path
) -> Iterator[Stack]:
    """Service processes for this test; all stopped at teardown."""
    services = Stack(broker.bootstrap_servers, database_url, topic, journeys_file, tmp_path,
                     keys=asyncio.run(create_keys(database_url)))
    yield services
    services.stop_all()
