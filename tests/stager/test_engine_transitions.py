"""The journey engine's transitions and bookkeeping: what apply emits and keeps, under either policy."""

from stageline_stager.engine import CustomerState, JourneyEngine, Transition
from tests.fixtures.engine import COUNT_ONLY, CUSTOMER, at, run, tp, us


def test_transitions_carry_from_to_and_event(forward: JourneyEngine) -> None:
    state, transitions = run(
        forward,
        [tp("Ad Clicked", 0, "e1"), tp("Product Viewed", 1, "e2"), tp("Ad Viewed", 2, "e3")],
    )
    assert transitions == [
        Transition(CUSTOMER, None, "awareness", "e1", at(0)),
        Transition(CUSTOMER, "awareness", "interest", "e2", at(1)),
    ]
    assert state.stage == "interest"
    assert state.entered_at == us(1)


def test_no_transition_when_stage_unchanged(forward: JourneyEngine) -> None:
    state, _ = run(forward, [tp("Ad Clicked", 0, "e1")])
    state, transitions = run(forward, [tp("Ad Viewed", 1, "e2")], state=state)
    assert transitions == []
    assert state.stage == "awareness"
    assert state.entered_at == us(0)
    assert state.rule_counts == {"awareness#1": 2}


def test_non_matching_touchpoint_changes_nothing(forward: JourneyEngine) -> None:
    before, _ = run(forward, [tp("Ad Clicked", 0, "e1")])
    after, transitions = run(forward, [tp("Page Scrolled", 5, "e2")], state=before)

    assert transitions == []
    assert after == before == CustomerState("awareness", us(0), {"awareness#1": 1})


def test_non_matching_touchpoint_on_new_customer(latest: JourneyEngine) -> None:
    state, transitions = run(latest, [tp("Page Scrolled", 3, "e1")])
    assert transitions == []
    assert state == CustomerState()


def test_forward_journey_keeps_no_latest_matches(forward: JourneyEngine) -> None:
    state, _ = run(forward, [tp("Ad Clicked", 0, "e1")], [tp("Order Completed", 1, "e2")])
    assert state.rule_latest == {}
    assert state.rule_counts == {"awareness#1": 1, "purchase#1": 1, "loyalty#1": 1}


def test_latest_journey_treats_matches_recorded_before_it_as_oldest() -> None:
    """A forward journey switched to latest has counts without match times: any newer match wins."""
    engine = JourneyEngine(COUNT_ONLY)
    carried = CustomerState("vip", us(0), {"visit#1": 1, "vip#1": 2})
    assert engine.stage_of(carried) == "vip"  # ties among unknown times: the highest stage
    state, transitions = run(engine, [tp("Viewed", 1, "v1")], state=carried)
    assert state.stage == "visit"
    assert [(t.from_stage, t.to_stage) for t in transitions] == [("vip", "visit")]


def test_empty_batch_changes_nothing(forward: JourneyEngine) -> None:
    state, _ = run(forward, [tp("Ad Clicked", 0, "e1")])
    again, transitions = forward.apply(state, CUSTOMER, [])
    assert again == state
    assert transitions == []


def test_apply_does_not_mutate_input_state(forward: JourneyEngine) -> None:
    state, _ = run(forward, [tp("Order Completed", 0, "o1")])
    counts = dict(state.rule_counts)
    run(forward, [tp("Order Completed", 1, "o2")], state=state)
    assert state.rule_counts == counts
    assert state.stage == "purchase"
