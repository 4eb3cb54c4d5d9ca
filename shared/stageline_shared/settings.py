"""Settings every Stageline process reads from the environment (documented in the README)."""

from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from stageline_shared.webhook_targets import Allowance

DEFAULT_JOURNEYS_FILE = Path(__file__).with_name("default_journeys.yaml")


class CommonSettings(BaseSettings):
    """Broker, database, topics and journeys: the part every service shares."""

    model_config = SettingsConfigDict(env_prefix="STAGELINE_", frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "STAGELINE_KAFKA_BOOTSTRAP_SERVERS"),
    )
    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/stageline",
        validation_alias=AliasChoices("DATABASE_URL", "STAGELINE_DATABASE_URL"),
    )
    topic: str = "touchpoints"
    dlq_topic: str = "touchpoints.dlq"
    topic_partitions: int = Field(default=6, ge=1)
    journeys_file: Path = DEFAULT_JOURNEYS_FILE
    log_level: str = "INFO"
    # Webhook URLs on these address classes are accepted (comma-separated: loopback, private);
    # none by default. Read by the API (registration) and the dispatcher (every connection).
    webhook_allow: Annotated[tuple[Allowance, ...], NoDecode] = ()
    changes_topic: str = "stage-changes"

    @field_validator("webhook_allow", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value
