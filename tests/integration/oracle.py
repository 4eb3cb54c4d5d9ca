"""An independent recomputation of every customer's journey from the raw events, and the check of
what the stagers stored against it: stage, entered_at and every transition, per journey.

It knows only the rules of tests/integration/journeys.yaml (support.RULES) and the two
progression policies as the README states them, not the engine's code. Transitions and
entered_at depend on the order a customer's events are applied in, so the events given must be
each customer's in the order they were sent, with times increasing (SteadyLoad sends them so):
then every batching, redelivery and replay applies them in that order, and the result is exact.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from tests.integration.support import RULES, STAGES, plain_url

JOURNEYS = {"shop": "forward", "shop-latest": "latest"}

Transition = tuple[str | None, str, str, datetime]  # from, to, event_id, occurred_at


@dataclass
class Journey:
    """One customer's expected state in one journey."""

    stage: str | None = None
    entered_at: datetime | None = None
    transitions: list[Transition] = field(default_factory=list)


def _replay(events: list[dict[str, Any]], progression: str) -> Journey:
    counts: dict[str, int] = defaultdict(int)  # matches per event name
    newest: dict[int, datetime] = {}  # per rule (its index), when it last matched
    journey = Journey()
    for event in events:
        moment = datetime.fromisoformat(event["occurred_at"])
        counts[event["event"]] += 1
        for index, (name, _, _) in enumerate(RULES):
            if name == event["event"]:
                newest[index] = moment
        satisfied = [(newest[index], STAGES.index(stage)) for index, (name, stage, need) in enumerate(RULES)
                     if counts[name] >= need]
        if not satisfied:
            continue
        if progression == "forward":
            stage = STAGES[max(rank for _, rank in satisfied)]
        else:  # latest: the stage of the newest touchpoint that has one, the highest if several
            stage = STAGES[max(satisfied)[1]]
        if stage != journey.stage:
            journey.transitions.append((journey.stage, stage, event["event_id"], moment))
            journey.stage, journey.entered_at = stage, moment
    return journey


def recompute(sent: Iterable[dict[str, Any]]) -> dict[str, dict[str, Journey]]:
    """Per journey and customer, the expected journey of the events in the order sent (copies
    of an event_id after its first are skipped, as the stager skips them)."""
    seen: set[str] = set()
    by_customer: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in sent:
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            by_customer[event["customer_id"]].append(event)
    result: dict[str, dict[str, Journey]] = {}
    for journey, progression in JOURNEYS.items():
        replayed = {customer: _replay(events, progression) for customer, events in by_customer.items()}
        result[journey] = {customer: state for customer, state in replayed.items() if state.stage}
    return result


async def stored_journeys(database_url: str) -> dict[str, dict[str, Journey]]:
    """What the stagers stored, in the same shape."""
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        stages = await conn.fetch("SELECT journey, customer_id, stage, entered_at FROM customer_stages")
        transitions = await conn.fetch(
            "SELECT journey, customer_id, from_stage, to_stage, event_id, occurred_at "
            "FROM stage_transitions ORDER BY journey, customer_id, occurred_at, id")
    finally:
        await conn.close()
    result: dict[str, dict[str, Journey]] = {journey: {} for journey in JOURNEYS}
    for row in stages:
        result[row["journey"]][row["customer_id"]] = Journey(row["stage"], row["entered_at"])
    for row in transitions:
        state = result[row["journey"]].setdefault(row["customer_id"], Journey())
        state.transitions.append((row["from_stage"], row["to_stage"], row["event_id"], row["occurred_at"]))
    return result


async def assert_journeys_match(database_url: str, sent: Iterable[dict[str, Any]]) -> int:
    """Every customer's stage, entered_at and transitions equal the recomputation; returns the
    number of (journey, customer) pairs compared."""
    expected, stored = recompute(sent), await stored_journeys(database_url)
    compared = 0
    for journey, customers in expected.items():
        assert sorted(stored[journey]) == sorted(customers), f"{journey}: customers differ"
        for customer, state in customers.items():
            assert stored[journey][customer] == state, (journey, customer)
            compared += 1
    return compared
