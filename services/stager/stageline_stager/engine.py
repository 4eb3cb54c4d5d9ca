"""The journey engine: which rules a touchpoint matches and how a customer's stage follows.

Pure: no I/O. A customer's state is a function of the *set* of touchpoints applied to it (rule
counts, the latest matching touchpoint), never of their arrival order, so redelivery and
reordering cannot change a stage as long as each event is applied once.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from stageline_shared.events import Touchpoint
from stageline_shared.journeys import Journey, Match, PropertyTest, Rule


@dataclass(frozen=True)
class CustomerState:
    """What the stager keeps per (journey, customer)."""

    stage: str | None = None
    entered_at: datetime | None = None
    last_event_id: str | None = None
    last_touchpoint_at: datetime | None = None
    latest_at: datetime | None = None
    latest_event_id: str | None = None
    latest_rules: tuple[str, ...] = ()
    rule_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Transition:
    """The customer moved from one stage to another (from None: entered the journey)."""

    customer_id: str
    from_stage: str | None
    to_stage: str
    event_id: str
    occurred_at: datetime


def _as_list(value: str | list[str] | None) -> list[str] | None:
    return [value] if isinstance(value, str) else value


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _property_holds(test: PropertyTest, present: bool, value: Any) -> bool:
    if test.exists is not None and test.exists != present:
        return False
    if not present:
        return test.exists is False
    if test.eq is not None and value != test.eq:
        return False
    if test.ne is not None and value == test.ne:
        return False
    if test.in_ is not None and value not in test.in_:
        return False
    bounds = [(test.gt, float.__gt__), (test.gte, float.__ge__), (test.lt, float.__lt__),
              (test.lte, float.__le__)]
    if any(bound is not None for bound, _ in bounds):
        number = _number(value)
        if number is None:
            return False
        return all(bound is None or compare(number, bound) for bound, compare in bounds)
    return True


def matches(match: Match, touchpoint: Touchpoint) -> bool:
    """Does the touchpoint satisfy every part of the rule's match?"""
    events = _as_list(match.event)
    if events is not None and touchpoint.event not in events:
        return False
    channels = _as_list(match.channel)
    if channels is not None and touchpoint.channel not in channels:
        return False
    for key, expected in match.properties.items():
        present = key in touchpoint.properties
        value = touchpoint.properties.get(key)
        if isinstance(expected, PropertyTest):
            if not _property_holds(expected, present, value):
                return False
        elif not present or value != expected:
            return False
    return True


class JourneyEngine:
    """Applies touchpoints to customers of one journey."""

    def __init__(self, journey: Journey) -> None:
        self.journey = journey
        self._rules: list[tuple[str, Rule, int]] = [
            (rule_id, rule, journey.rank(rule.stage))
            for rule_id, rule in zip(journey.rule_ids(), journey.rules, strict=True)
        ]
        self._by_id = {rule_id: (rule, rank) for rule_id, rule, rank in self._rules}

    def matching_rules(self, touchpoint: Touchpoint) -> tuple[str, ...]:
        return tuple(rule_id for rule_id, rule, _ in self._rules if matches(rule.match, touchpoint))

    def _satisfied_rank(self, rule_ids: Iterable[str], counts: dict[str, int]) -> int | None:
        ranks = [
            self._by_id[rule_id][1]
            for rule_id in rule_ids
            if rule_id in self._by_id and counts.get(rule_id, 0) >= self._by_id[rule_id][0].min_count
        ]
        return max(ranks, default=None)

    def stage_of(self, state: CustomerState) -> str | None:
        """The stage the progression policy gives for this state."""
        if self.journey.progression == "forward":
            rank = self._satisfied_rank(state.rule_counts, state.rule_counts)
        else:
            # The latest matching touchpoint is the newest of all matches, so the k-th-match
            # condition of a count rule reduces to the customer's total count for that rule.
            rank = self._satisfied_rank(state.latest_rules, state.rule_counts)
        return None if rank is None else self.journey.stages[rank]

    def apply(
        self, state: CustomerState, customer_id: str, touchpoints: Iterable[Touchpoint]
    ) -> tuple[CustomerState, list[Transition]]:
        """Apply new (never before applied) touchpoints of one customer, oldest first."""
        transitions: list[Transition] = []
        ordered = sorted(touchpoints, key=lambda t: (t.occurred_at, t.event_id))
        for touchpoint in ordered:
            key = (touchpoint.occurred_at, touchpoint.event_id)
            if state.last_touchpoint_at is None or key > (
                state.last_touchpoint_at, state.last_event_id or ""
            ):
                state = replace(
                    state, last_touchpoint_at=touchpoint.occurred_at,
                    last_event_id=touchpoint.event_id,
                )
            rule_ids = self.matching_rules(touchpoint)
            if not rule_ids:
                continue
            counts = dict(state.rule_counts)
            for rule_id in rule_ids:
                counts[rule_id] = counts.get(rule_id, 0) + 1
            state = replace(state, rule_counts=counts)
            if state.latest_at is None or key > (state.latest_at, state.latest_event_id or ""):
                state = replace(
                    state, latest_at=touchpoint.occurred_at, latest_event_id=touchpoint.event_id,
                    latest_rules=rule_ids,
                )
            stage = self.stage_of(state)
            if stage is not None and stage != state.stage:
                transitions.append(
                    Transition(customer_id, state.stage, stage, touchpoint.event_id,
                               touchpoint.occurred_at)
                )
                state = replace(state, stage=stage, entered_at=touchpoint.occurred_at)
        return state, transitions
