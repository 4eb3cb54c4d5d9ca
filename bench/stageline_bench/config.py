"""Sizes and switches of one benchmark run: the issue's defaults, `--quick` for the CI smoke."""

from dataclasses import dataclass, field, replace
from pathlib import Path

from stageline_ingest.settings import IngestSettings

PHASES = ("raw", "ingest", "stager", "pipeline", "e2e", "webhooks", "api")


@dataclass(frozen=True)
class BenchConfig:
    raw_messages: int = 1_000_000  # raw producer: ~200-byte keyed values
    raw_rows: int = 1_000_000  # raw Postgres: touchpoint rows, 5,000 per transaction
    raw_rows_per_txn: int = 5_000
    ingest_seconds: float = 20.0
    concurrencies: tuple[int, ...] = (8, 64)
    batch: int = 100  # events per HTTP request
    events: int = 1_000_000  # stager: preloaded topic
    customers: int = 100_000  # the load generators' and the raw references' customers
    # The stager phase runs once per count: the cost per event grows with the customers stored.
    stager_customers: tuple[int, ...] = (100_000, 1_000_000)
    pipeline_seconds: float = 30.0
    # The whole pipeline held at a steady rate: pipeline_share of the raw Postgres rate measured
    # in the same run, unless a fixed rate is given (--pipeline-rate).
    pipeline_rate: int | None = None
    pipeline_share: float = 0.6
    rate: int = 2_000  # e2e and soak: steady events/s
    seconds: float = 60.0  # e2e (or soak) duration
    webhook_deliveries: int = 100_000  # webhooks: deliveries waiting when the dispatchers start
    dispatchers: int = 1  # webhooks: dispatcher processes delivering them
    api_customers: int = 1_000_000
    touchpoints: int = 10_000_000
    hot_customers: int | None = None  # customers with full timeline pages; default 1%
    api_seconds: float = 10.0
    api_connections: int = 1
    partitions: int = 6
    # Stager processes in one consumer group: one more than the cores, as each waits on Postgres
    # for part of every batch (held at 30k, alternated runs:
    # largest lag 0.62-0.94 s with 3, 0.77-1.15 s with 2).
    stagers: int = 3
    generator: str = "auto"  # auto | wrk | asyncio
    phases: tuple[str, ...] = PHASES
    results_dir: Path = Path("bench/results")
    journeys_file: Path | None = None
    service_env: dict[str, str] = field(default_factory=dict)
    quick: bool = False

    @property
    def compression(self) -> str:
        """The codec ingest produces with (its default, or --env STAGELINE_COMPRESSION)."""
        default = IngestSettings.model_fields["compression"].default
        return self.service_env.get("STAGELINE_COMPRESSION", default)

    def held_rate(self, raw_postgres_rows_per_s: float) -> int:
        """The rate the whole pipeline is held at, events/s."""
        if self.pipeline_rate is not None:
            return self.pipeline_rate
        return max(1, round(self.pipeline_share * raw_postgres_rows_per_s))

    @property
    def hot(self) -> int:
        if self.hot_customers is not None:
            return self.hot_customers
        return max(10, self.api_customers // 100)


def quick(config: BenchConfig) -> BenchConfig:
    """A few thousand events per phase: seconds, for the CI smoke; timings mean nothing."""
    # The pipeline is held at a fixed 1,000 events/s: 60% of raw Postgres would make the smoke slow.
    return replace(
        config, quick=True, raw_messages=5_000, raw_rows=5_000, ingest_seconds=2.0, events=5_000,
        customers=500, stager_customers=(500, 5_000), pipeline_seconds=3.0, pipeline_rate=1_000,
        rate=500, seconds=4.0, webhook_deliveries=2_000, api_customers=5_000, touchpoints=50_000,
        hot_customers=20, api_seconds=2.0,
    )


def customers_label(count: int) -> str:
    """100000 -> "100k", 1000000 -> "1M", 500 -> "500": the stager runs' names in figure ids."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if count >= size and count % size == 0:
            return f"{count // size}{suffix}"
    return str(count)
