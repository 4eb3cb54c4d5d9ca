"""The journey engine's latest policy: the stage of the newest matching touchpoint, ties by event id."""

import pytest

from stageline_stager.engine import JourneyEngine
from tests.fixtures.engine import COUNT_ONLY, run, tp, us


def test_latest_goes_back(latest: JourneyEngine) -> None:
    state, transitions = run(
        latest, [tp("Order Completed", 0, "o1")], [tp("Product Viewed", 5, "v1")]
    )

    assert state.stage == "interest"
    assert [(t.from_stage, t.to_stage, t.event_id) for t in transitions] == [
        (None, "purchase", "o1"), ("purchase", "interest", "v1")
    ]
    assert state.rule_latest == {
        "purchase#1": (us(0), "o1"), "loyalty#1": (us(0), "o1"), "interest#1": (us(5), "v1")
    }
    assert max(state.rule_latest.values()) == (us(5), "v1")
    assert latest.stage_of(state) == "interest"


def test_latest_follows_occurred_at_not_arrival(latest: JourneyEngine) -> None:
    state, transitions = run(
        latest, [tp("Product Viewed", 5, "v1")], [tp("Order Completed", 0, "o1")]
    )
    assert state.stage == "interest"
    assert [(t.from_stage, t.to_stage) for t in transitions] == [(None, "interest")]
    assert max(state.rule_latest.values()) == (us(5), "v1")
    assert state.rule_latest["interest#1"] == (us(5), "v1")


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("order_first", [False, True])
def test_latest_tie_broken_by_event_id(latest: JourneyEngine, split: bool, order_first: bool) -> None:
    order = tp("Order Completed", 0, "a-order")
    view = tp("Product Viewed", 0, "b-view")
    first, second = (order, view) if order_first else (view, order)
    batches = [[first], [second]] if split else [[first, second]]

    state, _ = run(latest, *batches)

    assert state.stage == "interest"  # "b-view" > "a-order"
    assert state.rule_latest == {
        "purchase#1": (us(0), "a-order"), "loyalty#1": (us(0), "a-order"),
        "interest#1": (us(0), "b-view"),
    }
    assert max(state.rule_latest.values()) == (us(0), "b-view")


@pytest.mark.parametrize("split", [False, True])
def test_latest_tie_broken_by_event_id_other_way(latest: JourneyEngine, split: bool) -> None:
    order = tp("Order Completed", 0, "z-order")
    view = tp("Product Viewed", 0, "b-view")
    batches = [[order], [view]] if split else [[view, order]]

    state, _ = run(latest, *batches)

    assert state.stage == "purchase"
    assert state.rule_latest == {
        "purchase#1": (us(0), "z-order"), "loyalty#1": (us(0), "z-order"),
        "interest#1": (us(0), "b-view"),
    }
    assert max(state.rule_latest.values()) == (us(0), "z-order")


def test_latest_late_older_order_makes_latest_order_the_second(latest: JourneyEngine) -> None:
    state, _ = run(latest, [tp("Order Completed", 50, "o2")])
    assert state.stage == "purchase"

    state, transitions = run(latest, [tp("Order Completed", 10, "o1")], state=state)

    assert state.stage == "loyalty"
    assert state.rule_latest == {"purchase#1": (us(50), "o2"), "loyalty#1": (us(50), "o2")}
    assert state.rule_counts == {"purchase#1": 2, "loyalty#1": 2}
    assert [(t.from_stage, t.to_stage, t.event_id) for t in transitions] == [
        ("purchase", "loyalty", "o1")
    ]


def test_latest_second_order_after_going_back(latest: JourneyEngine) -> None:
    state, _ = run(
        latest, [tp("Order Completed", 0, "o1")], [tp("Ad Clicked", 1, "a1")],
        [tp("Order Completed", 2, "o2")],
    )
    assert state.stage == "loyalty"


def test_latest_late_older_touchpoint_does_not_change_stage(latest: JourneyEngine) -> None:
    state, _ = run(latest, [tp("Product Viewed", 10, "v1")])
    state, transitions = run(latest, [tp("Order Completed", 1, "o1")], state=state)
    assert state.stage == "interest"
    assert transitions == []
    assert state.rule_counts == {"interest#1": 1, "purchase#1": 1, "loyalty#1": 1}


def test_latest_unsatisfied_latest_touchpoint_keeps_previous_stage_in_order() -> None:
    engine = JourneyEngine(COUNT_ONLY)
    state, _ = run(engine, [tp("Viewed", 1, "v1")], [tp("Bought", 2, "b1")])
    assert state.stage == "visit"


def test_latest_unsatisfied_latest_touchpoint_is_order_independent() -> None:
    engine = JourneyEngine(COUNT_ONLY)
    in_order, _ = run(engine, [tp("Viewed", 1, "v1")], [tp("Bought", 2, "b1")])
    reordered, _ = run(engine, [tp("Bought", 2, "b1")], [tp("Viewed", 1, "v1")])
    assert in_order.stage == "visit"
    assert reordered.stage == "visit"
    assert in_order == reordered
