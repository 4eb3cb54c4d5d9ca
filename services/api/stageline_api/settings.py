"""API settings (STAGELINE_* environment variables; see the README table)."""

from pydantic import Field

from stageline_shared.settings import CommonSettings


class ApiSettings(CommonSettings):
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    key_cache_s: float = Field(default=5.0, ge=0)
    produce_timeout_s: float = 10.0
