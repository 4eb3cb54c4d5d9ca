"""Stager settings (STAGELINE_* environment variables; see the README table)."""

from typing import Literal

from pydantic import Field

from stageline_shared.settings import CommonSettings


class StagerSettings(CommonSettings):
    group_id: str = "stageline-stager"
    stager_host: str = "127.0.0.1"
    stager_port: int = 8002
    max_batch: int = Field(default=5000, ge=1)
    poll_ms: int = Field(default=200, ge=1)
    db_retry_s: float = Field(default=1.0, gt=0)
    rebalance_wait_s: float = Field(default=30.0, gt=0)
    # Off: a batch's COMMIT does not wait for the WAL flush. Safe here because the offsets are in
    # the same transaction: a commit lost in a Postgres crash is lost whole and replayed from Kafka.
    synchronous_commit: Literal["on", "off"] = "off"
