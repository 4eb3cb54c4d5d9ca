"""The journey engine: rule matching, the forward and latest policies, transitions."""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stageline_shared.contract.record import Touchpoint
from stageline_shared.journeys import Journey, Match, load_journeys
from stageline_shared.settings import DEFAULT_JOURNEYS_FILE
from stageline_stager.engine import CustomerState, JourneyEngine, Transition, matches, micros

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CUSTOMER = "cust-1"
MISSING = object()


def _tp(
    event: str,
    minute: float = 0,
    event_id: str | None = None,
    channel: str | None = None,
    properties: dict[str, Any] | None = None,
) -> Touchpoint:
    return Touchpoint(
        event_id=event_id or f"{event}@{minute}",
        customer_id=CUSTOMER,
        event=event,
        channel=channel,
        occurred_at=T0 + timedelta(minutes=minute),
        received_at=T0 + timedelta(days=1),
        properties=properties or {},
    )


def _at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def _us(minute: float) -> int:
    """A time as the state keeps it."""
    return micros(_at(minute))


@pytest.fixture(scope="module")
def forward() -> JourneyEngine:
    return JourneyEngine(load_journeys(DEFAULT_JOURNEYS_FILE)["ecommerce"])


@pytest.fixture(scope="module")
def latest() -> JourneyEngine:
    return JourneyEngine(load_journeys(DEFAULT_JOURNEYS_FILE)["ecommerce-latest"])


def _run(
    engine: JourneyEngine, *batches: Iterable[Touchpoint], state: CustomerState | None = None
) -> tuple[CustomerState, list[Transition]]:
    state = state or CustomerState()
    transitions: list[Transition] = []
    for batch in batches:
        state, emitted = engine.apply(state, CUSTOMER, batch)
        transitions.extend(emitted)
    return state, transitions


def _one_by_one(engine: JourneyEngine, touchpoints: Iterable[Touchpoint]) -> CustomerState:
    return _run(engine, *[[touchpoint] for touchpoint in touchpoints])[0]


# --- matching -------------------------------------------------------------------------------------


def _match(spec: dict[str, Any]) -> Match:
    return Match.model_validate(spec)


def test_event_single_name() -> None:
    match = _match({"event": "Ad Clicked"})
    assert matches(match, _tp("Ad Clicked"))
    assert not matches(match, _tp("Ad Viewed"))
    assert not matches(match, _tp("ad clicked"))


def test_event_list() -> None:
    match = _match({"event": ["Ad Clicked", "Ad Viewed"]})
    assert matches(match, _tp("Ad Clicked"))
    assert matches(match, _tp("Ad Viewed"))
    assert not matches(match, _tp("Email Opened"))


def test_channel_single_and_list() -> None:
    single = _match({"channel": "ads"})
    assert matches(single, _tp("Anything", channel="ads"))
    assert not matches(single, _tp("Anything", channel="web"))
    assert not matches(single, _tp("Anything"))

    several = _match({"channel": ["ads", "email"]})
    assert matches(several, _tp("Anything", channel="email"))
    assert not matches(several, _tp("Anything", channel="web"))
    assert not matches(several, _tp("Anything"))


def test_every_part_must_hold() -> None:
    match = _match({"event": "Order Completed", "channel": "web", "properties": {"plan": "pro"}})
    assert matches(match, _tp("Order Completed", channel="web", properties={"plan": "pro"}))
    assert not matches(match, _tp("Order Completed", channel="app", properties={"plan": "pro"}))
    assert not matches(match, _tp("Order Started", channel="web", properties={"plan": "pro"}))
    assert not matches(match, _tp("Order Completed", channel="web", properties={"plan": "free"}))
    assert not matches(match, _tp("Order Completed", channel="web"))


def test_property_equality() -> None:
    match = _match({"properties": {"plan": "pro", "seats": 3}})
    assert matches(match, _tp("x", properties={"plan": "pro", "seats": 3, "other": 1}))
    assert matches(match, _tp("x", properties={"plan": "pro", "seats": 3.0}))
    assert not matches(match, _tp("x", properties={"plan": "pro", "seats": 4}))
    assert not matches(match, _tp("x", properties={"plan": "Pro", "seats": 3}))
    assert not matches(match, _tp("x", properties={"plan": "pro"}))
    assert not matches(match, _tp("x", properties={"plan": "pro", "seats": "3"}))


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
    assert matches(match, _tp("Product Rated", properties=properties)) is expected


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
    assert matches(match, _tp("x", properties={"flag": value})) is expected


def test_default_rules(forward: JourneyEngine) -> None:
    assert forward.matching_rules(_tp("Order Completed")) == ("purchase#1", "loyalty#1")
    assert forward.matching_rules(_tp("Ad Clicked", channel="ads")) == ("awareness#1", "awareness#2")
    assert forward.matching_rules(_tp("Product Rated", properties={"rating": 5})) == (
        "high-rating-review",
    )
    assert forward.matching_rules(_tp("Product Rated", properties={"rating": 3})) == ()
    assert forward.matching_rules(_tp("Page Scrolled")) == ()


# --- forward policy -------------------------------------------------------------------------------


def test_forward_skips_stages(forward: JourneyEngine) -> None:
    state, transitions = _run(forward, [_tp("Ad Clicked", 0, "e1")], [_tp("Order Completed", 1, "e2")])

    assert state.stage == "purchase"
    assert [(t.from_stage, t.to_stage) for t in transitions] == [
        (None, "awareness"), ("awareness", "purchase")
    ]


def test_forward_first_touchpoint_can_enter_any_stage(forward: JourneyEngine) -> None:
    state, transitions = _run(forward, [_tp("Cart Viewed", 0, "e1")])
    assert state.stage == "intent"
    assert [(t.from_stage, t.to_stage) for t in transitions] == [(None, "intent")]


def test_forward_never_goes_back(forward: JourneyEngine) -> None:
    state, _ = _run(forward, [_tp("Order Completed", 0, "e1")])
    state, transitions = _run(
        forward, [_tp("Product Viewed", 5, "e2")], [_tp("Ad Clicked", 6, "e3")], state=state
    )

    assert state.stage == "purchase"
    assert transitions == []
    assert forward.stage_of(state) == "purchase"


def test_forward_late_older_touchpoint_cannot_lower(forward: JourneyEngine) -> None:
    state, _ = _run(forward, [_tp("Order Completed", 10, "e1")])
    state, transitions = _run(forward, [_tp("Ad Clicked", 1, "e0")], state=state)
    assert state.stage == "purchase"
    assert transitions == []


def test_forward_second_order_is_loyalty(forward: JourneyEngine) -> None:
    state, _ = _run(forward, [_tp("Order Completed", 0, "o1")])
    assert state.stage == "purchase"
    assert state.rule_counts == {"purchase#1": 1, "loyalty#1": 1}

    state, transitions = _run(forward, [_tp("Order Completed", 60, "o2")], state=state)
    assert state.stage == "loyalty"
    assert state.rule_counts == {"purchase#1": 2, "loyalty#1": 2}
    assert [(t.from_stage, t.to_stage, t.event_id) for t in transitions] == [
        ("purchase", "loyalty", "o2")
    ]


def test_forward_two_orders_in_one_batch(forward: JourneyEngine) -> None:
    state, transitions = _run(
        forward, [_tp("Order Completed", 9, "o2"), _tp("Order Completed", 1, "o1")]
    )
    assert state.stage == "loyalty"
    assert [(t.from_stage, t.to_stage, t.event_id) for t in transitions] == [
        (None, "purchase", "o1"), ("purchase", "loyalty", "o2")
    ]


def test_forward_high_rating_review_is_advocacy(forward: JourneyEngine) -> None:
    state, _ = _run(forward, [_tp("Product Rated", 0, "r1", properties={"rating": 3})])
    assert state.stage is None
    state, _ = _run(forward, [_tp("Product Rated", 1, "r2", properties={"rating": 4.5})], state=state)
    assert state.stage == "advocacy"


def test_forward_order_independent(forward: JourneyEngine) -> None:
    touchpoints = [
        _tp("Ad Clicked", 0, "a"), _tp("Order Completed", 1, "b"), _tp("Review Read", 2, "c"),
        _tp("Order Completed", 3, "d"),
    ]
    in_order = _one_by_one(forward, touchpoints)
    reversed_ = _one_by_one(forward, reversed(touchpoints))
    assert in_order.stage == reversed_.stage == "loyalty"
    assert in_order.rule_counts == reversed_.rule_counts


# --- latest policy --------------------------------------------------------------------------------


def test_latest_goes_back(latest: JourneyEngine) -> None:
    state, transitions = _run(
        latest, [_tp("Order Completed", 0, "o1")], [_tp("Product Viewed", 5, "v1")]
    )

    assert state.stage == "interest"
    assert [(t.from_stage, t.to_stage, t.event_id) for t in transitions] == [
        (None, "purchase", "o1"), ("purchase", "interest", "v1")
    ]
    assert state.rule_latest == {
        "purchase#1": (_us(0), "o1"), "loyalty#1": (_us(0), "o1"), "interest#1": (_us(5), "v1")
    }
    assert max(state.rule_latest.values()) == (_us(5), "v1")
    assert latest.stage_of(state) == "interest"


def test_latest_follows_occurred_at_not_arrival(latest: JourneyEngine) -> None:
    state, transitions = _run(
        latest, [_tp("Product Viewed", 5, "v1")], [_tp("Order Completed", 0, "o1")]
    )
    assert state.stage == "interest"
    assert [(t.from_stage, t.to_stage) for t in transitions] == [(None, "interest")]
    assert max(state.rule_latest.values()) == (_us(5), "v1")
    assert state.rule_latest["interest#1"] == (_us(5), "v1")


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("order_first", [False, True])
def test_latest_tie_broken_by_event_id(latest: JourneyEngine, split: bool, order_first: bool) -> None:
    order = _tp("Order Completed", 0, "a-order")
    view = _tp("Product Viewed", 0, "b-view")
    first, second = (order, view) if order_first else (view, order)
    batches = [[first], [second]] if split else [[first, second]]

    state, _ = _run(latest, *batches)

    assert state.stage == "interest"  # "b-view" > "a-order"
    assert state.rule_latest == {
        "purchase#1": (_us(0), "a-order"), "loyalty#1": (_us(0), "a-order"),
        "interest#1": (_us(0), "b-view"),
    }
    assert max(state.rule_latest.values()) == (_us(0), "b-view")


@pytest.mark.parametrize("split", [False, True])
def test_latest_tie_broken_by_event_id_other_way(latest: JourneyEngine, split: bool) -> None:
    order = _tp("Order Completed", 0, "z-order")
    view = _tp("Product Viewed", 0, "b-view")
    batches = [[order], [view]] if split else [[view, order]]

    state, _ = _run(latest, *batches)

    assert state.stage == "purchase"
    assert state.rule_latest == {
        "purchase#1": (_us(0), "z-order"), "loyalty#1": (_us(0), "z-order"),
        "interest#1": (_us(0), "b-view"),
    }
    assert max(state.rule_latest.values()) == (_us(0), "z-order")


def test_latest_late_older_order_makes_latest_order_the_second(latest: JourneyEngine) -> None:
    state, _ = _run(latest, [_tp("Order Completed", 50, "o2")])
    assert state.stage == "purchase"

    state, transitions = _run(latest, [_tp("Order Completed", 10, "o1")], state=state)

    assert state.stage == "loyalty"
    assert state.rule_latest == {"purchase#1": (_us(50), "o2"), "loyalty#1": (_us(50), "o2")}
    assert state.rule_counts == {"purchase#1": 2, "loyalty#1": 2}
    assert [(t.from_stage, t.to_stage, t.event_id) for t in transitions] == [
        ("purchase", "loyalty", "o1")
    ]


def test_latest_second_order_after_going_back(latest: JourneyEngine) -> None:
    state, _ = _run(
        latest, [_tp("Order Completed", 0, "o1")], [_tp("Ad Clicked", 1, "a1")],
        [_tp("Order Completed", 2, "o2")],
    )
    assert state.stage == "loyalty"


def test_latest_late_older_touchpoint_does_not_change_stage(latest: JourneyEngine) -> None:
    state, _ = _run(latest, [_tp("Product Viewed", 10, "v1")])
    state, transitions = _run(latest, [_tp("Order Completed", 1, "o1")], state=state)
    assert state.stage == "interest"
    assert transitions == []
    assert state.rule_counts == {"interest#1": 1, "purchase#1": 1, "loyalty#1": 1}


_COUNT_ONLY = Journey.model_validate(
    {
        "name": "count-only",
        "progression": "latest",
        "stages": ["visit", "vip"],
        "rules": [
            {"stage": "visit", "match": {"event": "Viewed"}},
            {"stage": "vip", "match": {"event": "Bought"}, "min_count": 2},
        ],
    }
)


def test_latest_unsatisfied_latest_touchpoint_keeps_previous_stage_in_order() -> None:
    engine = JourneyEngine(_COUNT_ONLY)
    state, _ = _run(engine, [_tp("Viewed", 1, "v1")], [_tp("Bought", 2, "b1")])
    assert state.stage == "visit"


def test_latest_unsatisfied_latest_touchpoint_is_order_independent() -> None:
    engine = JourneyEngine(_COUNT_ONLY)
    in_order, _ = _run(engine, [_tp("Viewed", 1, "v1")], [_tp("Bought", 2, "b1")])
    reordered, _ = _run(engine, [_tp("Bought", 2, "b1")], [_tp("Viewed", 1, "v1")])
    assert in_order.stage == "visit"
    assert reordered.stage == "visit"
    assert in_order == reordered


# --- transitions and bookkeeping ------------------------------------------------------------------


def test_transitions_carry_from_to_and_event(forward: JourneyEngine) -> None:
    state, transitions = _run(
        forward,
        [_tp("Ad Clicked", 0, "e1"), _tp("Product Viewed", 1, "e2"), _tp("Ad Viewed", 2, "e3")],
    )
    assert transitions == [
        Transition(CUSTOMER, None, "awareness", "e1", _at(0)),
        Transition(CUSTOMER, "awareness", "interest", "e2", _at(1)),
    ]
    assert state.stage == "interest"
    assert state.entered_at == _us(1)


def test_no_transition_when_stage_unchanged(forward: JourneyEngine) -> None:
    state, _ = _run(forward, [_tp("Ad Clicked", 0, "e1")])
    state, transitions = _run(forward, [_tp("Ad Viewed", 1, "e2")], state=state)
    assert transitions == []
    assert state.stage == "awareness"
    assert state.entered_at == _us(0)
    assert state.rule_counts == {"awareness#1": 2}


def test_non_matching_touchpoint_changes_nothing(forward: JourneyEngine) -> None:
    before, _ = _run(forward, [_tp("Ad Clicked", 0, "e1")])
    after, transitions = _run(forward, [_tp("Page Scrolled", 5, "e2")], state=before)

    assert transitions == []
    assert after == before == CustomerState("awareness", _us(0), {"awareness#1": 1})


def test_non_matching_touchpoint_on_new_customer(latest: JourneyEngine) -> None:
    state, transitions = _run(latest, [_tp("Page Scrolled", 3, "e1")])
    assert transitions == []
    assert state == CustomerState()


def test_forward_journey_keeps_no_latest_matches(forward: JourneyEngine) -> None:
    state, _ = _run(forward, [_tp("Ad Clicked", 0, "e1")], [_tp("Order Completed", 1, "e2")])
    assert state.rule_latest == {}
    assert state.rule_counts == {"awareness#1": 1, "purchase#1": 1, "loyalty#1": 1}


def test_latest_journey_treats_matches_recorded_before_it_as_oldest() -> None:
    """A forward journey switched to latest has counts without match times: any newer match wins."""
    engine = JourneyEngine(_COUNT_ONLY)
    carried = CustomerState("vip", _us(0), {"visit#1": 1, "vip#1": 2})
    assert engine.stage_of(carried) == "vip"  # ties among unknown times: the highest stage
    state, transitions = _run(engine, [_tp("Viewed", 1, "v1")], state=carried)
    assert state.stage == "visit"
    assert [(t.from_stage, t.to_stage) for t in transitions] == [("vip", "visit")]



def test_empty_batch_changes_nothing(forward: JourneyEngine) -> None:
    state, _ = _run(forward, [_tp("Ad Clicked", 0, "e1")])
    again, transitions = forward.apply(state, CUSTOMER, [])
    assert again == state
    assert transitions == []


def test_apply_does_not_mutate_input_state(forward: JourneyEngine) -> None:
    state, _ = _run(forward, [_tp("Order Completed", 0, "o1")])
    counts = dict(state.rule_counts)
    _run(forward, [_tp("Order Completed", 1, "o2")], state=state)
    assert state.rule_counts == counts
    assert state.stage == "purchase"


def test_matching_is_the_same_past_the_memo_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hostile event names cannot grow the per-journey memo; matches stay right past its limit."""
    monkeypatch.setattr("stageline_stager.engine._MEMO_LIMIT", 2)
    engine = JourneyEngine(load_journeys(DEFAULT_JOURNEYS_FILE)["ecommerce"])
    touchpoints = [_tp(f"Unknown {n}", n) for n in range(5)] + [
        _tp("Ad Clicked", 6, channel="ads"), _tp("Page Viewed", 7, properties={"name": "Pricing"}),
        _tp("Page Viewed", 8, properties={"name": "Home"}), _tp("Product Viewed", 9, channel="ads"),
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
