"""The journey engine's rule matching: events, channels, property operators, the default rules, the memo."""

from typing import Any

import pytest

from stageline_shared.journeys import Match, load_journeys
from stageline_shared.settings import DEFAULT_JOURNEYS_FILE
from stageline_stager.engine import JourneyEngine, matches
from tests.fixtures.engine import tp

MISSING = object()


def _match(spec: dict[str, Any]) -> Match:
    return Match.model_validate(spec)


def test_event_single_name() -> None:
    match = _match({"event": "Ad Clicked"})
    assert matches(match, tp("Ad Clicked"))
    assert not matches(match, tp("Ad Viewed"))
    assert not matches(match, tp("ad clicked"))


def test_event_list() -> None:
    match = _match({"event": ["Ad Clicked", "Ad Viewed"]})
    assert matches(match, tp("Ad Clicked"))
    assert matches(match, tp("Ad Viewed"))
    assert not matches(match, tp("Email Opened"))


def test_channel_single_and_list() -> None:
    single = _match({"channel": "ads"})
    assert matches(single, tp("Anything", channel="ads"))
    assert not matches(single, tp("Anything", channel="web"))
    assert not matches(single, tp("Anything"))

    several = _match({"channel": ["ads", "email"]})
    assert matches(several, tp("Anything", channel="email"))
    assert not matches(several, tp("Anything", channel="web"))
    assert not matches(several, tp("Anything"))


def test_every_part_must_hold() -> None:
    match = _match({"event": "Order Completed", "channel": "web", "properties": {"plan": "pro"}})
    assert matches(match, tp("Order Completed", channel="web", properties={"plan": "pro"}))
    assert not matches(match, tp("Order Completed", channel="app", properties={"plan": "pro"}))
    assert not matches(match, tp("Order Started", channel="web", properties={"plan": "pro"}))
    assert not matches(match, tp("Order Completed", channel="web", properties={"plan": "free"}))
    assert not matches(match, tp("Order Completed", channel="web"))


def test_property_equality() -> None:
    match = _match({"properties": {"plan": "pro", "seats": 3}})
    assert matches(match, tp("x", properties={"plan": "pro", "seats": 3, "other": 1}))
    assert matches(match, tp("x", properties={"plan": "pro", "seats": 3.0}))
    assert not matches(match, tp("x", properties={"plan": "pro", "seats": 4}))
    assert not matches(match, tp("x", properties={"plan": "Pro", "seats": 3}))
    assert not matches(match, tp("x", properties={"plan": "pro"}))
    assert not matches(match, tp("x", properties={"plan": "pro", "seats": "3"}))


@pytest.mark.parametrize(
    ("test", "value", "expected"),
    [
        # eq / ne / in
        ({"eq": "gold"}, "gold", True),
        ({"eq": "gold"}, "silver", False),
        ({"eq": "gold"}, MISSING, False),
        ({"eq": 5}, 5, True),
        ({"eq": 5}, "5", False),
        ({"ne": "gold"}, "silver", True),
        ({"ne": "gold"}, "gold", False),
        ({"ne": "gold"}, None, True),
        ({"ne": "gold"}, MISSING, False),
        ({"in": ["gold", "silver"]}, "silver", True),
        ({"in": ["gold", "silver"]}, "bronze", False),
        ({"in": ["gold", "silver"]}, MISSING, False),
        ({"in": [1, 2]}, 2, True),
        # numeric bounds
        ({"gt": 4}, 5, True),
        ({"gt": 4}, 4.5, True),
        ({"gt": 4}, 4, False),
        ({"gt": 4}, 3, False),
        ({"gte": 4}, 4, True),
        ({"gte": 4}, 4.0, True),
        ({"gte": 4}, 3.99, False),
        ({"lt": 4}, 3, True),
        ({"lt": 4}, 4, False),
        ({"lte": 4}, 4, True),
        ({"lte": 4}, 4.01, False),
        ({"gte": -1.5}, -1.5, True),
        ({"gte": 1, "lt": 5}, 3, True),
        ({"gte": 1, "lt": 5}, 5, False),
        ({"gte": 1, "lt": 5}, 0, False),
        # non-numeric values never satisfy a numeric operator
        ({"gt": 4}, "5", False),
        ({"gte": 4}, "four", False),
        ({"lt": 4}, None, False),
        ({"lte": 4}, [1], False),
        ({"gt": 0}, {"n": 1}, False),
        ({"gt": 4}, MISSING, False),
        ({"ne": 4, "gt": 0}, "x", False),
        # integers beyond any float (another producer's record) still compare
        ({"gte": 4}, 10**400, True),
        ({"lt": 4}, 10**400, False),
        ({"lt": 4}, -(10**400), True),
        # booleans are not numbers
        ({"gte": 1}, True, False),
        ({"gt": 0}, True, False),
        ({"lt": 1}, False, False),
        ({"lte": 0}, False, False),
        # exists
        ({"exists": True}, "x", True),
        ({"exists": True}, None, True),
        ({"exists": True}, MISSING, False),
        ({"exists": False}, MISSING, True),
        ({"exists": False}, "x", False),
        ({"exists": False}, None, False),
        ({"exists": True, "gte": 4}, 5, True),
        ({"exists": True, "gte": 4}, 3, False),
        ({"exists": True, "gte": 4}, MISSING, False),
        ({"exists": False, "gte": 4}, MISSING, True),
        # booleans compared to booleans
        ({"eq": True}, True, True),
        ({"eq": False}, False, True),
        ({"eq": True}, False, False),
    ],
)
def test_property_operators(test: dict[str, Any], value: Any, expected: bool) -> None:
    match = _match({"properties": {"rating": test}})
    properties = {} if value is MISSING else {"rating": value}
    assert matches(match, tp("Product Rated", properties=properties)) is expected


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ({"eq": True}, 1, False),
        ({"eq": 1}, True, False),
        ({"eq": 0}, False, False),
        ({"in": [1, 2]}, True, False),
        ({"ne": 0}, False, True),
        ({"ne": True}, 1.0, True),
        (True, 1, False),
        (0, False, False),
    ],
)
def test_booleans_do_not_equal_numbers(spec: Any, value: Any, expected: bool) -> None:
    match = _match({"properties": {"flag": spec}})
    assert matches(match, tp("x", properties={"flag": value})) is expected


def test_default_rules(forward: JourneyEngine) -> None:
    assert forward.matching_rules(tp("Order Completed")) == ("purchase#1", "loyalty#1")
    assert forward.matching_rules(tp("Ad Clicked", channel="ads")) == ("awareness#1", "awareness#2")
    assert forward.matching_rules(tp("Product Rated", properties={"rating": 5})) == (
        "high-rating-review",
    )
    assert forward.matching_rules(tp("Product Rated", properties={"rating": 3})) == ()
    assert forward.matching_rules(tp("Page Scrolled")) == ()


def test_matching_is_the_same_past_the_memo_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hostile event names cannot grow the per-journey memo; matches stay right past its limit."""
    monkeypatch.setattr("stageline_stager.engine._MEMO_LIMIT", 2)
    engine = JourneyEngine(load_journeys(DEFAULT_JOURNEYS_FILE)["ecommerce"])
    touchpoints = [tp(f"Unknown {n}", n) for n in range(5)] + [
        tp("Ad Clicked", 6, channel="ads"), tp("Page Viewed", 7, properties={"name": "Pricing"}),
        tp("Page Viewed", 8, properties={"name": "Home"}), tp("Product Viewed", 9, channel="ads"),
    ]
    assert [engine.matching_rules(t) for t in touchpoints] == [
        *[()] * 5, ("awareness#1", "awareness#2"), ("pricing-page",), (), ("awareness#2", "interest#1"),
    ]
    assert [engine.matching_rules(t) for t in touchpoints] == [
        tuple(rule_id for rule_id, rule in zip(engine.journey.rule_ids(), engine.journey.rules, strict=True)
              if matches(rule.match, t))
        for t in touchpoints
    ]
    assert len(engine._memo) == 2
