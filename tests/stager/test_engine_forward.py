"""The journey engine's forward policy: a customer's stage only rises, in whatever order events come."""

from collections.abc import Iterable

from stageline_shared.contract.record import Touchpoint
from stageline_stager.engine import CustomerState, JourneyEngine
from tests.fixtures.engine import run, tp


def _one_by_one(engine: JourneyEngine, touchpoints: Iterable[Touchpoint]) -> CustomerState:
    return run(engine, *[[touchpoint] for touchpoint in touchpoints])[0]


def test_forward_skips_stages(forward: JourneyEngine) -> None:
    state, transitions = run(forward, [tp("Ad Clicked", 0, "e1")], [tp("Order Completed", 1, "e2")])

    assert state.stage == "purchase"
    assert [(t.from_stage, t.to_stage) for t in transitions] == [
        (None, "awareness"), ("awareness", "purchase")
    ]


def test_forward_first_touchpoint_can_enter_any_stage(forward: JourneyEngine) -> None:
    state, transitions = run(forward, [tp("Cart Viewed", 0, "e1")])
    assert state.stage == "intent"
    assert [(t.from_stage, t.to_stage) for t in transitions] == [(None, "intent")]


def test_forward_never_goes_back(forward: JourneyEngine) -> None:
    state, _ = run(forward, [tp("Order Completed", 0, "e1")])
    state, transitions = run(
        forward, [tp("Product Viewed", 5, "e2")], [tp("Ad Clicked", 6, "e3")], state=state
    )

    assert state.stage == "purchase"
    assert transitions == []
    assert forward.stage_of(state) == "purchase"


def test_forward_late_older_touchpoint_cannot_lower(forward: JourneyEngine) -> None:
    state, _ = run(forward, [tp("Order Completed", 10, "e1")])
    state, transitions = run(forward, [tp("Ad Clicked", 1, "e0")], state=state)
    assert state.stage == "purchase"
    assert transitions == []


def test_forward_second_order_is_loyalty(forward: JourneyEngine) -> None:
    state, _ = run(forward, [tp("Order Completed", 0, "o1")])
    assert state.stage == "purchase"
    assert state.rule_counts == {"purchase#1": 1, "loyalty#1": 1}

    state, transitions = run(forward, [tp("Order Completed", 60, "o2")], state=state)
    assert state.stage == "loyalty"
    assert state.rule_counts == {"purchase#1": 2, "loyalty#1": 2}
    assert [(t.from_stage, t.to_stage, t.event_id) for t in transitions] == [
        ("purchase", "loyalty", "o2")
    ]


def test_forward_two_orders_in_one_batch(forward: JourneyEngine) -> None:
    state, transitions = run(
        forward, [tp("Order Completed", 9, "o2"), tp("Order Completed", 1, "o1")]
    )
    assert state.stage == "loyalty"
    assert [(t.from_stage, t.to_stage, t.event_id) for t in transitions] == [
        (None, "purchase", "o1"), ("purchase", "loyalty", "o2")
    ]


def test_forward_high_rating_review_is_advocacy(forward: JourneyEngine) -> None:
    state, _ = run(forward, [tp("Product Rated", 0, "r1", properties={"rating": 3})])
    assert state.stage is None
    state, _ = run(forward, [tp("Product Rated", 1, "r2", properties={"rating": 4.5})], state=state)
    assert state.stage == "advocacy"


def test_forward_order_independent(forward: JourneyEngine) -> None:
    touchpoints = [
        tp("Ad Clicked", 0, "a"), tp("Order Completed", 1, "b"), tp("Review Read", 2, "c"),
        tp("Order Completed", 3, "d"),
    ]
    in_order = _one_by_one(forward, touchpoints)
    reversed_ = _one_by_one(forward, reversed(touchpoints))
    assert in_order.stage == reversed_.stage == "loyalty"
    assert in_order.rule_counts == reversed_.rule_counts
