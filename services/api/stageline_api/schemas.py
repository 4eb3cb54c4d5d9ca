"""Response models of the read API (they are also its OpenAPI documentation)."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stageline_shared.keys import MAX_LABEL, KeyKind


class JourneyOut(BaseModel):
    name: str
    description: str
    progression: Literal["forward", "latest"]
    stages: list[str]


class JourneyList(BaseModel):
    journeys: list[JourneyOut]


class StageCount(BaseModel):
    stage: str
    customers: int


class StageCounts(BaseModel):
    journey: str
    stages: list[StageCount]
    total: int


class LastTouchpoint(BaseModel):
    event_id: str
    event: str
    channel: str | None
    occurred_at: datetime


class CustomerStage(BaseModel):
    journey: str
    stage: str | None
    entered_at: datetime | None


class CustomerOut(BaseModel):
    customer_id: str
    aliases: list[str]
    stages: list[CustomerStage]
    last_touchpoint: LastTouchpoint | None


class TimelineItem(BaseModel):
    type: Literal["touchpoint", "stage_changed"]
    occurred_at: datetime
    event_id: str
    event: str | None = None
    channel: str | None = None
    properties: dict[str, Any] | None = None
    journey: str | None = None
    from_stage: str | None = None
    to_stage: str | None = None


class Timeline(BaseModel):
    customer_id: str
    items: list[TimelineItem]
    next_cursor: str | None


class KeyIn(BaseModel):
    """A key to create: a write key needs the source its events come from."""

    model_config = ConfigDict(extra="forbid")

    kind: KeyKind
    source: str | None = Field(default=None, max_length=MAX_LABEL, examples=["web shop"])
    name: str | None = Field(default=None, max_length=MAX_LABEL, examples=["checkout frontend"])


class KeyOut(BaseModel):
    id: str
    kind: KeyKind
    source: str | None
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(BaseModel):
    """The new key; `key` is the secret, shown in this response only."""

    id: str
    kind: KeyKind
    source: str | None
    name: str | None
    key: str


class KeyList(BaseModel):
    keys: list[KeyOut]


class EraseQueued(BaseModel):
    erase_event_id: str
    status: Literal["queued"] = "queued"
