"""Response models of the read API (they are also its OpenAPI documentation)."""

from datetime import datetime
from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from stageline_shared.journeys import Name
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


class AudienceMember(BaseModel):
    customer_id: str
    entered_at: datetime


class Audience(BaseModel):
    """A page of the customers in a stage, in (entered_at, customer_id) order."""

    journey: str
    stage: str
    customers: list[AudienceMember]
    next_cursor: str | None


class Change(BaseModel):
    """One item of the change feed (version `v`; stageline_shared.feed)."""

    model_config = ConfigDict(extra="forbid")

    v: int
    position: int
    kind: Literal["stage", "merge", "erase"]
    customer_id: str
    journey: str | None = None
    from_stage: str | None = None
    to_stage: str | None = None
    merged_id: str | None = None
    event_id: str
    occurred_at: datetime
    recorded_at: datetime


class ChangePage(BaseModel):
    changes: list[Change]
    next_cursor: str


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


class WebhookIn(BaseModel):
    """An endpoint to send changes to; `journeys` and `to_stages` filter stage changes (merges and
    erasures always go)."""

    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl = Field(examples=["https://crm.example.com/hooks/stageline"])
    journeys: list[Name] | None = Field(default=None, min_length=1, max_length=100)
    to_stages: list[Name] | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=MAX_LABEL)


class WebhookOut(BaseModel):
    id: str
    url: str
    journeys: list[str] | None
    to_stages: list[str] | None
    description: str | None
    created_at: datetime
    disabled_at: datetime | None
    disabled_reason: str | None
    previous_secret_until: datetime | None


class WebhookCreated(WebhookOut):
    """The new endpoint; `secret` signs its deliveries and is shown in this response only."""

    secret: str


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]


class SecretRotated(BaseModel):
    id: str
    secret: str
    previous_secret_until: datetime


class DeliveryOut(BaseModel):
    id: int
    position: int
    kind: Literal["stage", "merge", "erase"]
    customer_id: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status: int | None
    last_error: str | None
    latency_ms: float | None
    created_at: datetime
    next_attempt_at: datetime
    finished_at: datetime | None


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]
    next_cursor: str | None


class Replayed(BaseModel):
    id: str
    queued: int
