"""Settings every Stageline process reads from the environment (documented in the README)."""

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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
