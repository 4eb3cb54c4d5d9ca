"""Properties and context reach Postgres as JSON its jsonb accepts, whatever a record held."""

import json
import math

import pytest

from stageline_shared.contract.record import Touchpoint
from stageline_stager.repository.touchpoints import json_text

BIG = 2**70


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ({"n": 1, "s": "é"}, {"n": 1, "s": "é"}),
        ({"big": BIG}, {"big": BIG}),  # beyond orjson's 64 bits
        ({"nan": math.nan, "inf": [math.inf, 1.5]}, {"nan": None, "inf": [None, 1.5]}),
        ({"big": BIG, "deep": {"x": [-math.inf]}}, {"big": BIG, "deep": {"x": [None]}}),
    ],
)
def test_json_text_is_strict_json(value: dict[str, object], stored: dict[str, object]) -> None:
    text = json_text(value)
    assert json.loads(text, parse_constant=lambda token: pytest.fail(f"{token} is not JSON")) == stored


def test_non_json_numbers_from_another_producer_are_stored_as_null() -> None:
    raw = (b'{"event_id": "e", "customer_id": "c", "event": "E", "occurred_at": "2026-01-01T00:00:00Z",'
           b' "received_at": "2026-01-01T00:00:00Z", "properties": {"a": NaN, "b": %d}}' % BIG)
    assert json.loads(json_text(Touchpoint.from_json(raw).properties)) == {"a": None, "b": BIG}
