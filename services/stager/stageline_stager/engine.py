"""The journey engine: which rules a touchpoint matches and how a customer's stage follows.

Pure: no I/O. A customer's state is a function of the *set* of touchpoints applied to it (rule
counts, the latest matching touchpoint), never of their arrival order, so redelivery and
reordering cannot change a stage as long as each event is applied once.

Times in the state are integer microseconds since the Unix epoch (UTC): compared as they are
and stored as they are, never parsed.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from msgspec.structs import replace

from stageline_shared.contract.record import TouchpointFields
from stageline_shared.journeys import Journey, Match, PropertyTest, Rule

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# The match time of a rule a journey recorded before it ran the latest policy: older than any.
_NEVER = (-(2**63), "")
_NOTHING = (_NEVER, -1)  # below any satisfied rule's (match, rank)

Key = tuple[int, str]  # (occurred_at in µs, event_id): touchpoints in time order, ties by id
Timed = tuple[int, str, TouchpointFields]  # (occurred_at in µs, event_id, touchpoint)


def micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch, exactly."""
    return (moment - EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


class CustomerState(msgspec.Struct, array_like=True):
    """What the stager keeps per (journey, customer); treated as immutable.

    Stored (progress.py) as the JSON array [stage, entered_at, rule_counts, rule_latest], which
    msgspec reads and writes directly.
    """

    stage: str | None = None
    entered_at: int | None = None  # µs since the epoch
    rule_counts: dict[str, int] = {}
    # Per rule, the key of its newest match: what the latest policy needs (forward journeys
    # keep none).
    rule_latest: dict[str, Key] = {}


@dataclass(frozen=True, slots=True)
class Transition:
    """The customer moved from one stage to another (from None: entered the journey)."""

    customer_id: str
    from_stage: str | None
    to_stage: str
    event_id: str
    occurred_at: datetime


def _as_list(value: str | list[str] | None) -> list[str] | None:
    return [value] if isinstance(value, str) else value


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1 and false is not 0, unlike Python's ==."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float (a record from another producer)
        return math.inf if value > 0 else -math.inf


def _property_holds(test: PropertyTest, present: bool, value: Any) -> bool:
    if test.exists is not None and test.exists != present:
        return False
    if not present:
        return test.exists is False
    if test.eq is not None and not _same(value, test.eq):
        return False
    if test.ne is not None and _same(value, test.ne):
        return False
    if test.in_ is not None and not any(_same(value, option) for option in test.in_):
        return False
    bounds = [(test.gt, float.__gt__), (test.gte, float.__ge__), (test.lt, float.__lt__),
              (test.lte, float.__le__)]
    if any(bound is not None for bound, _ in bounds):
        number = _number(value)
        if number is None:
            return False
        return all(bound is None or compare(number, bound) for bound, compare in bounds)
    return True


def _named(match: Match, event: str, channel: str | None) -> bool:
    """Do the event name and channel satisfy the match (its properties aside)?"""
    events = _as_list(match.event)
    if events is not None and event not in events:
        return False
    channels = _as_list(match.channel)
    return channels is None or channel in channels


def _properties_match(match: Match, properties: dict[str, Any]) -> bool:
    for key, expected in match.properties.items():
        present = key in properties
        value = properties.get(key)
        if isinstance(expected, PropertyTest):
            if not _property_holds(expected, present, value):
                return False
        elif not present or not _same(value, expected):
            return False
    return True


def matches(match: Match, touchpoint: TouchpointFields) -> bool:
    """Does the touchpoint satisfy every part of the rule's match?"""
    return _named(match, touchpoint.event, touchpoint.channel) and \
        _properties_match(match, touchpoint.properties)


# Distinct (event name, channel) pairs whose candidate rules are remembered per journey. Real
# traffic has a few hundred; past the limit (hostile names) they are worked out every time.
_MEMO_LIMIT = 10_000

# The rules an (event, channel) pair satisfies, and those it satisfies only if properties hold.
Candidates = tuple[tuple[str, ...], tuple[tuple[str, Match], ...]]


class JourneyEngine:
    """Applies touchpoints to customers of one journey."""

    def __init__(self, journey: Journey) -> None:
        self.journey = journey
        self._rules: list[tuple[str, Rule, int]] = [
            (rule_id, rule, journey.rank(rule.stage))
            for rule_id, rule in zip(journey.rule_ids(), journey.rules, strict=True)
        ]
        # Per rule: the matches it needs, and the rank of its stage.
        self._needed = {rule_id: (rule.min_count, rank) for rule_id, rule, rank in self._rules}
        self._latest_wins = journey.progression == "latest"
        self._memo: dict[tuple[str, str | None], Candidates] = {}

    def _candidates(self, event: str, channel: str | None) -> Candidates:
        named = [(rule_id, rule.match) for rule_id, rule, _ in self._rules
                 if _named(rule.match, event, channel)]
        return (tuple(rule_id for rule_id, match in named if not match.properties),
                tuple((rule_id, match) for rule_id, match in named if match.properties))

    def matching_rules(self, touchpoint: TouchpointFields) -> tuple[str, ...]:
        key = (touchpoint.event, touchpoint.channel)
        candidates = self._memo.get(key)
        if candidates is None:
            candidates = self._candidates(*key)
            if len(self._memo) < _MEMO_LIMIT:
                self._memo[key] = candidates
        matched, tested = candidates
        if not tested:
            return matched
        return matched + tuple(rule_id for rule_id, match in tested
                               if _properties_match(match, touchpoint.properties))

    def stage_of(self, state: CustomerState) -> str | None:
        """The stage the progression policy gives for this state.

        forward: the highest stage of any satisfied rule. latest: the stage of the newest
        touchpoint that has one. A touchpoint has a stage through a rule it matches when it is at
        least that rule's min_count-th match; the newest such touchpoint is therefore the newest
        "last match" among satisfied rules, and its stage the highest satisfied rule matched last
        there.
        """
        return self._stage(state.rule_counts, state.rule_latest)

    def _stage(self, counts: dict[str, int], latest: dict[str, Key]) -> str | None:
        rank = self._top(counts, latest)[1]
        return self.journey.stages[rank] if rank >= 0 else None

    def _top(self, counts: dict[str, int], latest: dict[str, Key]) -> tuple[Key, int]:
        """The greatest (newest match, rank) among satisfied rules, _NOTHING when none is.

        Its rank is the stage's: forward journeys go by no match (every key is _NEVER), so the
        highest satisfied rank wins; latest journeys take the newest match, then the highest rank.
        Rules no longer in the journey file (left in stored state) count for nothing.
        """
        needed = self._needed
        if not self._latest_wins:
            best = -1
            for rule_id, count in counts.items():
                rule = needed.get(rule_id)
                if rule is not None and count >= rule[0] and rule[1] > best:
                    best = rule[1]
            return _NEVER, best
        top = _NOTHING
        for rule_id, count in counts.items():
            rule = needed.get(rule_id)
            if rule is not None and count >= rule[0]:
                candidate = (latest.get(rule_id, _NEVER), rule[1])
                if candidate > top:
                    top = candidate
        return top

    def apply(
        self, state: CustomerState, customer_id: str, touchpoints: Iterable[TouchpointFields]
    ) -> tuple[CustomerState, list[Transition]]:
        """Apply new (never before applied) touchpoints of one customer."""
        return self.apply_ordered(state, customer_id, in_time_order(touchpoints))

    def apply_ordered(
        self, state: CustomerState, customer_id: str, ordered: list[Timed]
    ) -> tuple[CustomerState, list[Transition]]:
        """apply() for touchpoints already put in_time_order (once for every journey).

        The same state comes back when no touchpoint matched a rule.
        """
        transitions: list[Transition] = []
        stage, entered_at = state.stage, state.entered_at
        counts: dict[str, int] | None = None  # copied on the first match
        latest_wins, needed = self._latest_wins, self._needed
        latest = state.rule_latest
        top = _NOTHING
        for occurred_at, event_id, touchpoint in ordered:
            rule_ids = self.matching_rules(touchpoint)
            if not rule_ids:
                continue
            if counts is None:
                counts = dict(state.rule_counts)
                if latest_wins:
                    latest = dict(latest)
                top = self._top(counts, latest)
            # Counts and matches only grow, so the top moves only to a rule this touchpoint
            # matched: no need to look at the others again.
            key = (occurred_at, event_id)
            for rule_id in rule_ids:
                count = counts[rule_id] = counts.get(rule_id, 0) + 1
                rule_key = _NEVER
                if latest_wins:
                    rule_key = latest.get(rule_id, _NEVER)
                    if key > rule_key:
                        rule_key = latest[rule_id] = key
                min_count, rank = needed[rule_id]
                if count >= min_count and (rule_key, rank) > top:
                    top = (rule_key, rank)
            new_stage = self.journey.stages[top[1]] if top[1] >= 0 else None
            if new_stage is not None and new_stage != stage:
                transitions.append(Transition(customer_id, stage, new_stage, event_id,
                                              touchpoint.occurred_at))
                stage, entered_at = new_stage, occurred_at
        if counts is None:
            return state, transitions
        return CustomerState(stage, entered_at, counts, latest), transitions


def in_time_order(touchpoints: Iterable[TouchpointFields]) -> list[Timed]:
    """Touchpoints oldest first (ties by event id), each with its time in µs."""
    ordered = [(micros(t.occurred_at), t.event_id, t) for t in touchpoints]
    if len(ordered) > 1:
        ordered.sort(key=_oldest_first)
    return ordered


def _oldest_first(item: Timed) -> Key:
    return item[0], item[1]


def merge_states(
    engine: JourneyEngine, into: CustomerState, merged: CustomerState, at: datetime
) -> CustomerState:
    """The state of a customer who absorbs another's touchpoints (identity stitching).

    States are functions of disjoint touchpoint sets, so the union is exact: counts add, each
    rule's newest match is the newer of the two, and the stage follows from the result. A stage
    neither side had (a count rule now met) is entered `at` the link.
    """
    counts = dict(into.rule_counts)
    for rule_id, count in merged.rule_counts.items():
        counts[rule_id] = counts.get(rule_id, 0) + count
    latest = dict(into.rule_latest)
    for rule_id, key in merged.rule_latest.items():
        if key > latest.get(rule_id, _NEVER):
            latest[rule_id] = key
    combined = replace(into, rule_counts=counts, rule_latest=latest)
    stage = engine.stage_of(combined)
    if stage == into.stage:
        return combined
    entered_at = merged.entered_at if stage == merged.stage else micros(at)
    return replace(combined, stage=stage, entered_at=entered_at)
