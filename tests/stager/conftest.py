"""The stager's tests get the default file's two journeys as engines (tests/fixtures/engine.py)."""

from tests.fixtures.engine import forward, latest  # noqa: F401 (fixtures, found by name)
