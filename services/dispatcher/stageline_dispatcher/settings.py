"""Dispatcher settings (STAGELINE_* environment variables; see the README table)."""

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from stageline_shared.settings import CommonSettings

# Standard Webhooks' schedule: the waits before the 2nd … 10th attempt.
STANDARD_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)


class DispatcherSettings(CommonSettings):
    dispatcher_host: str = "127.0.0.1"
    dispatcher_port: int = 8003
    # How often an idle relay and delivery loop look for work (ms); they also run at once after
    # finding some.
    relay_interval_ms: int = Field(default=50, ge=1)
    relay_batch: int = Field(default=5000, ge=1)
    publish_changes: bool = True  # to changes_topic; off: the feed is HTTP and webhooks only
    # Seconds to wait before each retry (comma-separated); after the last, the delivery is given
    # up and the endpoint disabled.
    webhook_retry_schedule_s: Annotated[tuple[float, ...], NoDecode] = STANDARD_SCHEDULE
    webhook_timeout_s: float = Field(default=15.0, gt=0)
    # A claimed delivery is leased for the timeout plus this: a dispatcher killed mid-send leaves
    # it to another once the lease runs out.
    webhook_lease_margin_s: float = Field(default=30.0, gt=0)
    webhook_concurrency: int = Field(default=256, ge=1)  # requests in flight per dispatcher
    webhook_claim: int = Field(default=1000, ge=1)  # deliveries claimed per round trip
    # Finished deliveries (delivered or given up) are kept this long for
    # GET /v1/admin/webhooks/{id}/deliveries, then deleted.
    webhook_retention_days: float = Field(default=7.0, gt=0)

    @field_validator("webhook_retry_schedule_s", mode="before")
    @classmethod
    def _schedule(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(float(part) for part in value.split(",") if part.strip())
        return value
