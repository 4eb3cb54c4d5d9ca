"""The change feed's item, version 1: what `GET /v1/changes` lists, the `stage-changes` topic
carries and every webhook's `data` holds, built from one stage_changes row in one place.

    {"v": 1, "position": 42, "kind": "stage" | "merge" | "erase", "customer_id": "…",
     "journey": "…", "from_stage": "…" | null, "to_stage": "…",      (stage only)
     "merged_id": "…",                                               (merge only)
     "event_id": "…", "occurred_at": RFC 3339, "recorded_at": RFC 3339}

A field that does not belong to a kind is left out, never null, except from_stage (null: the
customer entered the journey).
"""

from datetime import datetime
from typing import Any, Literal, Protocol

VERSION = 1
Kind = Literal["stage", "merge", "erase"]

# The webhook `type` of each kind (Standard Webhooks: a dotted event type per payload).
WEBHOOK_TYPES: dict[str, str] = {
    "stage": "customer.stage_changed",
    "merge": "customer.merged",
    "erase": "customer.erased",
}

# Whether webhook endpoint `e` takes change `c` (SQL, on those aliases): stage changes through its
# filters; merges and erasures always, as a CRM told of a customer must be able to follow it being
# merged or forgotten. The relay's fan-out and the admin API's replay both select with it.
ENDPOINT_TAKES = """(
    c.kind <> 'stage' OR (
        (e.journeys IS NULL OR c.journey = ANY(e.journeys))
        AND (e.to_stages IS NULL OR c.to_stage = ANY(e.to_stages))))"""

# The stage_changes columns an item is built from, for SELECT lists.
COLUMNS = ("position", "kind", "journey", "customer_id", "from_stage", "to_stage", "merged_id",
           "event_id", "occurred_at", "recorded_at")


def _time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


class Columns(Protocol):
    """A row with COLUMNS, by name: an asyncpg Record or a dict."""

    def __getitem__(self, key: str, /) -> Any: ...


def item(row: Columns) -> dict[str, Any]:
    """The feed item of a stage_changes row."""
    out: dict[str, Any] = {"v": VERSION, "position": row["position"], "kind": row["kind"],
                           "customer_id": row["customer_id"]}
    if row["kind"] == "stage":
        out.update(journey=row["journey"], from_stage=row["from_stage"], to_stage=row["to_stage"])
    elif row["kind"] == "merge":
        out["merged_id"] = row["merged_id"]
    out.update(event_id=row["event_id"], occurred_at=_time(row["occurred_at"]),
               recorded_at=_time(row["recorded_at"]))
    return out
