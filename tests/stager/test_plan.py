"""Planning a batch without Postgres: its order, identity merges, stage merges, counts, transitions."""

from datetime import UTC, datetime, timedelta

from stageline_shared.contract.record import Touchpoint, TouchpointType
from stageline_shared.journeys import Journey, Match, Rule
from stageline_stager.engine import CustomerState, JourneyEngine, Transition, micros
from stageline_stager.merges import Conflict, Merge, event_ids, plan_links
from stageline_stager.plan import (
    CountDeltas,
    by_customer,
    customers_to_lock,
    plan_stages,
    split_batch,
    without_suppressed,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
JOURNEY = Journey(name="shop", stages=["visitor", "buyer"], rules=[
    Rule(stage="visitor", match=Match(event="Page Viewed")),
    Rule(stage="buyer", match=Match(event="Order Completed")),
])
ENGINE = JourneyEngine(JOURNEY)


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def tp(event_id: str, customer: str, minute: int = 0, event: str = "Page Viewed", *,
       type_: TouchpointType = "track", user: str | None = None, anon: str | None = None,
       previous: str | None = None) -> Touchpoint:
    return Touchpoint(event_id=event_id, customer_id=customer, event=event, type=type_,
                      occurred_at=at(minute), received_at=at(60), user_id=user,
                      anonymous_id=anon, previous_id=previous)


def test_a_batch_drops_repeated_event_ids_first_one_wins_and_erases_last() -> None:
    first, again = tp("e-2", "a", minute=1), tp("e-2", "b", minute=2)
    erase = tp("erase-1", "a", type_="erase", event="Customer Erased")
    intake = split_batch([first, erase, tp("e-1", "a"), again, erase])
    assert [t.event_id for t in intake.events] == ["e-1", "e-2"]
    assert intake.events[1] is first
    assert intake.erasures == [erase]
    assert intake.duplicates == 2


def test_events_mentioning_an_erased_id_are_suppressed() -> None:
    events = [tp("e-1", "a"), tp("e-2", "b", anon="gone"), tp("e-3", "c", type_="alias", user="c",
                                                                previous="gone")]
    assert without_suppressed(events, {"gone"}) == events[:1]
    assert event_ids(events[2]) == ["c", "c", "gone"]


def test_a_login_merges_the_anonymous_customer_into_the_user() -> None:
    canon = {"anon": "anon", "user": "user"}
    login = tp("e-1", "user", minute=3, type_="identify", user="user", anon="anon")
    assert plan_links([login], canon) == ([Merge("anon", "user", "e-1", at(3))], [])
    assert canon == {"anon": "user", "user": "user"}


def test_first_link_wins_a_later_claim_is_a_conflict() -> None:
    canon = {"anon": "anon", "u1": "u1", "u2": "u2"}
    first = tp("e-1", "u1", minute=1, type_="identify", user="u1", anon="anon")
    second = tp("e-2", "u2", minute=2, type_="identify", user="u2", anon="anon")
    merges, conflicts = plan_links([second, first], canon)  # applied oldest first
    assert merges == [Merge("anon", "u1", "e-1", at(1))]
    assert conflicts == [Conflict("anon", "u1", "u2", "e-2")]
    assert canon == {"anon": "u1", "u1": "u1", "u2": "u2"}


def test_a_login_then_a_rename_chains_the_merges() -> None:
    canon = {"anon": "anon", "user": "user", "new": "new"}
    login = tp("e-1", "user", minute=1, type_="identify", user="user", anon="anon")
    rename = tp("e-2", "new", minute=2, type_="alias", user="new", previous="user")
    merges, conflicts = plan_links([rename, login], canon)
    assert merges == [Merge("anon", "user", "e-1", at(1)), Merge("user", "new", "e-2", at(2))]
    assert conflicts == []
    assert canon == {"anon": "new", "user": "new", "new": "new"}


def test_a_merge_chain_settles_everything_on_the_last_customer() -> None:
    """An id absorbed and then absorbed again in the same batch (a login, then an alias renaming
    the user id): nothing is left to write under the customers in between (this once crashed the
    stager with a KeyError), and their transitions go to the last one."""
    canon = {"anon": "anon", "user": "user", "new": "new"}
    login = tp("e-1", "anon", minute=1, event="Signed In", type_="identify", user="user", anon="anon")
    rename = tp("e-2", "user", minute=2, event="Alias", type_="alias", user="new", previous="user")
    order = tp("e-3", "new", minute=3, event="Order Completed")
    merges, _ = plan_links([login, rename, order], canon)
    stored = {"anon": {"shop": CustomerState("visitor", micros(at(0)), {"visitor#1": 1})}}
    grouped = by_customer([login, rename, order], canon)
    assert customers_to_lock(grouped, merges) == {"anon", "user", "new"}

    plan = plan_stages([ENGINE], grouped, merges, stored)

    assert plan.forgotten == ["anon", "user"]
    assert set(plan.progress) == {"new"}
    assert plan.progress["new"]["shop"] == CustomerState(
        "buyer", micros(at(3)), {"visitor#1": 1, "buyer#1": 1})
    assert plan.moved == {("shop", "new")}
    assert plan.transitions == [
        ("shop", Transition("new", None, "visitor", "e-1", at(1))),  # noted under "user" first
        ("shop", Transition("new", None, "visitor", "e-2", at(2))),
        ("shop", Transition("new", "visitor", "buyer", "e-3", at(3))),
    ]
    # anon's visitor moves to user, then to new, and new goes on to buyer.
    assert plan.deltas.changed() == [(("shop", "buyer"), 1), (("shop", "visitor"), -1)]
    assert stored == {"anon": {"shop": CustomerState("visitor", micros(at(0)), {"visitor#1": 1})}}


def test_touchpoints_matching_no_rule_change_nothing() -> None:
    grouped = by_customer([tp("e-1", "a", event="Logged Out")], {"a": "a"})
    plan = plan_stages([ENGINE], grouped, [], {})
    assert (plan.progress, plan.moved, plan.transitions, plan.forgotten) == ({}, set(), [], [])
    assert plan.deltas.changed() == []


def test_a_new_customer_enters_and_moves_on() -> None:
    batch = [tp("e-2", "a", minute=2, event="Order Completed"), tp("e-1", "a", minute=1)]
    plan = plan_stages([ENGINE], by_customer(batch, {"a": "a"}), [], {})
    assert plan.transitions == [("shop", Transition("a", None, "visitor", "e-1", at(1))),
                                ("shop", Transition("a", "visitor", "buyer", "e-2", at(2)))]
    assert plan.deltas.changed() == [(("shop", "buyer"), 1)]
    assert plan.moved == {("shop", "a")}


def test_count_deltas_add_up_and_leave_out_zeroes() -> None:
    deltas, erased = CountDeltas(), CountDeltas()
    deltas.move("shop", None, "visitor")
    deltas.move("shop", "visitor", "visitor")  # no move
    erased.move("shop", "visitor", None)
    erased.move("shop", "buyer", None)
    deltas.update(erased)
    assert deltas.changed() == [(("shop", "buyer"), -1)]
