"""What one polled batch does, decided from what was read: pure, no I/O.

The batch's own order (duplicates out, erasures last, suppressed events dropped), and, from the
progress of its customers read under lock, what their stages become: merged states, the moves of
every journey, the transitions and the changes to the stage counters. The repository reads the
inputs and writes the results, in the batch's transaction.
"""

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from stageline_shared.contract.record import TouchpointFields
from stageline_stager.engine import CustomerState, JourneyEngine, Transition, in_time_order, merge_states
from stageline_stager.merges import Merge, event_ids

Progress = dict[str, dict[str, CustomerState]]  # customer_id → journey → state
JourneyTransition = tuple[str, Transition]  # (journey, transition)


@dataclass(frozen=True)
class Intake:
    """A batch's touchpoints in the order they are applied."""

    events: list[TouchpointFields]  # every type but erase, in event_id order
    erasures: list[TouchpointFields]  # in event_id order, applied after every event
    duplicates: int  # records whose event_id came earlier in the same batch


def split_batch(touchpoints: Sequence[TouchpointFields]) -> Intake:
    """Drop repeated event_ids (the first record wins) and set the erase requests apart, so an
    erase removes what its own batch stored too."""
    unique = list({t.event_id: t for t in reversed(touchpoints)}.values())  # first one wins
    return Intake(
        events=sorted((t for t in unique if t.type != "erase"), key=lambda t: t.event_id),
        erasures=sorted((t for t in unique if t.type == "erase"), key=lambda t: t.event_id),
        duplicates=len(touchpoints) - len(unique),
    )


def without_suppressed(events: Iterable[TouchpointFields], hidden: Collection[str]) -> list[TouchpointFields]:
    """The events that mention none of the erased (suppressed) ids."""
    hidden = set(hidden)
    return [t for t in events if hidden.isdisjoint(event_ids(t))]


class CountDeltas:
    """Per (journey, stage), how many customers a batch adds to its counter (negative: removes)."""

    def __init__(self) -> None:
        self._deltas: defaultdict[tuple[str, str], int] = defaultdict(int)

    def move(self, journey: str, before: str | None, after: str | None) -> None:
        """A customer of `journey` went from stage `before` to `after` (None: not in it)."""
        if before != after:
            if before is not None:
                self._deltas[(journey, before)] -= 1
            if after is not None:
                self._deltas[(journey, after)] += 1

    def update(self, other: "CountDeltas") -> None:
        for key, delta in other._deltas.items():
            self._deltas[key] += delta

    def changed(self) -> list[tuple[tuple[str, str], int]]:
        """The non-zero changes, in (journey, stage) order (the order their rows are locked)."""
        return sorted((key, delta) for key, delta in self._deltas.items() if delta)


@dataclass
class StagePlan:
    """What a batch's new touchpoints and merges do to its customers' journeys."""

    progress: Progress = field(default_factory=dict)  # customers whose progress must be written
    moved: set[tuple[str, str]] = field(default_factory=set)  # (journey, customer): stage row to write
    transitions: list[JourneyTransition] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)  # absorbed customers: their rows go
    deltas: CountDeltas = field(default_factory=CountDeltas)


def by_customer(
    new: Iterable[TouchpointFields], canon: Mapping[str, str]
) -> dict[str, list[TouchpointFields]]:
    """New touchpoints grouped under the customer each belongs to after the batch's merges."""
    grouped: dict[str, list[TouchpointFields]] = defaultdict(list)
    for touchpoint in new:
        grouped[canon[touchpoint.customer_id]].append(touchpoint)
    return grouped


def customers_to_lock(grouped: Mapping[str, object], merges: Iterable[Merge]) -> set[str]:
    """The customers whose progress the batch reads and changes."""
    merges = list(merges)
    return set(grouped) | {m.source for m in merges} | {m.target for m in merges}


def plan_stages(
    engines: Sequence[JourneyEngine],
    grouped: Mapping[str, list[TouchpointFields]],
    merges: Sequence[Merge],
    progress: Progress,
) -> StagePlan:
    """Merge the absorbed customers' states into their targets (in merge order), then apply each
    customer's new touchpoints, oldest first; `progress` (as read) is left as it was."""
    progress = {customer: dict(journeys) for customer, journeys in progress.items()}
    plan = StagePlan()
    changed: set[str] = set()
    empty = CustomerState()
    for merge in merges:
        changed.add(merge.target)
        source = progress.pop(merge.source, {})
        target = progress.setdefault(merge.target, {})
        for engine in engines:
            name = engine.journey.name
            before, absorbed = target.get(name, empty), source.get(name, empty)
            combined = merge_states(engine, before, absorbed, merge.at)
            plan.deltas.move(name, absorbed.stage, None)
            plan.deltas.move(name, before.stage, combined.stage)
            if combined.stage is not None and combined.stage != before.stage:
                plan.transitions.append((name, Transition(
                    merge.target, before.stage, combined.stage, merge.event_id, merge.at)))
            target[name] = combined
            if (combined.stage, combined.entered_at) != (before.stage, before.entered_at):
                plan.moved.add((name, merge.target))
    merged = {m.source for m in merges}
    if merged:
        _settle_chains(merges, merged, changed, plan)
    for customer_id, customer_touchpoints in grouped.items():
        ordered = in_time_order(customer_touchpoints)
        journeys = progress.setdefault(customer_id, {})
        for engine in engines:
            name = engine.journey.name
            before = journeys.get(name, empty)
            after, transitions = engine.apply_ordered(before, customer_id, ordered)
            if after is before:  # no touchpoint matched a rule of this journey
                continue
            journeys[name] = after
            changed.add(customer_id)
            if transitions:
                plan.transitions += [(name, t) for t in transitions]
                plan.deltas.move(name, before.stage, after.stage)
                plan.moved.add((name, customer_id))
    plan.progress = {customer: progress[customer] for customer in changed}
    plan.forgotten = sorted(merged)  # gone, with any journeys no longer in the file
    return plan


def _settle_chains(merges: Sequence[Merge], merged: set[str], changed: set[str], plan: StagePlan) -> None:
    """Merges chain within a batch (a absorbed by b, then b by c: a rename after a login): what
    was noted under an intermediate customer belongs to the one that absorbed it last."""
    into = {m.source: m.target for m in merges}

    def last(customer: str) -> str:
        while customer in into:  # no cycles: an absorbed customer is never a merge target
            customer = into[customer]
        return customer

    changed -= merged
    plan.moved -= {(journey, customer) for journey, customer in plan.moved if customer in merged}
    plan.transitions = [
        (journey, replace(t, customer_id=last(t.customer_id)) if t.customer_id in merged else t)
        for journey, t in plan.transitions
    ]
