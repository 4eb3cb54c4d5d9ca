"""Test session setup: the integration fixtures (tests/fixtures/infrastructure.py), the rule that
tests using them carry the `integration` marker, and service logs in failure reports."""

from collections.abc import Generator

# Imported here, at a shallow stack: hypothesis's pytest plugin otherwise imports its internals
# lazily in pytest_terminal_summary, where CPython 3.11.7's parser can fail with "SystemError: AST
# constructor recursion depth mismatch" (fixed in 3.11.8) after a run without hypothesis tests.
import hypothesis.internal.observability  # noqa: F401
import pytest

from tests.fixtures.infrastructure import (  # noqa: F401 (fixtures, found by name)
    broker,
    database_url,
    journeys_file,
    pg_server,
    stack,
    template_db,
    topic,
)
from tests.fixtures.stack import Stack

# Fixtures that start a broker, Postgres or service processes: their tests are integration tests.
INTEGRATION_FIXTURES = frozenset({"broker", "pg_server", "template_db", "database_url", "stack"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`make unit` (-m "not integration") must never start a process: refuse a test that uses an
    integration fixture without the marker, rather than let the fast run quietly slow down."""
    unmarked = [item.nodeid for item in items
                if INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("integration") is None]
    if unmarked:
        raise pytest.UsageError("mark these tests `integration` (they start services): " + ", ".join(unmarked))


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
