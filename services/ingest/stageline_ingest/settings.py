"""Ingest settings (STAGELINE_* environment variables; see the README table)."""

from typing import Literal

from pydantic import Field

from stageline_shared.settings import CommonSettings


class IngestSettings(CommonSettings):
    ingest_host: str = "127.0.0.1"
    ingest_port: int = 8001
    ingest_workers: int = Field(default=1, ge=1)
    produce_timeout_s: float = Field(default=10.0, gt=0)
    retry_after_s: int = Field(default=5, ge=1)
    startup_timeout_s: float = Field(default=60.0, gt=0)
    # zstd: the broker stores and checks a compressed batch for a fraction of the CPU a plain one
    # costs it, and compressing costs ingest less than writing the plain bytes saves it.
    compression: Literal["none", "gzip", "lz4", "zstd"] = "zstd"
    linger_ms: int = Field(default=0, ge=0)
    rate_limit_rps: float = Field(default=2000.0, gt=0)
    rate_limit_burst: float = Field(default=4000.0, ge=1)
    key_cache_s: float = Field(default=5.0, ge=0)
    cors_origins: list[str] = Field(default_factory=list)
