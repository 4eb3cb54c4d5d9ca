"""Identity stitching, decided: which customers a batch's links merge, and which links conflict.

Pure: takes the batch's events and the customer each of their ids belongs to (read under lock by
identities.py) and returns the merges to apply. First link wins: an id already merged into one
customer is not moved by a later claim (a conflict, counted).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from stageline_shared.contract.record import TouchpointFields, links


@dataclass(frozen=True)
class Merge:
    """Customer `source` is absorbed by customer `target` because of event `event_id`."""

    source: str
    target: str
    event_id: str
    at: datetime


@dataclass(frozen=True)
class Conflict:
    """Event `event_id` claims `id` for `claimant`, but `id` already belongs to `owner`."""

    id: str
    owner: str
    claimant: str
    event_id: str


def event_ids(touchpoint: TouchpointFields) -> list[str]:
    """Every identity an event mentions."""
    ids = [touchpoint.customer_id, touchpoint.user_id, touchpoint.anonymous_id, touchpoint.previous_id]
    return [i for i in ids if i]


def plan_links(
    touchpoints: Iterable[TouchpointFields], canon: dict[str, str]
) -> tuple[list[Merge], list[Conflict]]:
    """Apply the batch's links, oldest first, to `canon` (id → customer, updated in place).

    Merges come in the order they happen, so they chain: a customer absorbed by another that is
    itself absorbed later in the batch (a login, then an alias renaming the user id) appears as
    the target of one merge and the source of a later one.
    """
    merges: list[Merge] = []
    conflicts: list[Conflict] = []
    linking = [t for t in touchpoints if t.user_id and (t.anonymous_id or t.previous_id)]
    for touchpoint in sorted(linking, key=lambda t: (t.occurred_at, t.event_id)):
        for source, claimed_by in links(touchpoint):
            target = canon[claimed_by]
            owner = canon[source]
            if owner == target:
                continue
            if owner != source:
                conflicts.append(Conflict(source, owner, target, touchpoint.event_id))
                continue
            merges.append(Merge(source, target, touchpoint.event_id, touchpoint.occurred_at))
            for key, customer in canon.items():
                if customer == source:
                    canon[key] = target
    return merges, conflicts
