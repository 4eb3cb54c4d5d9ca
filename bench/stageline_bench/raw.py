"""Phase "raw": the references every ratio is taken against, on the same broker and Postgres.

The producer's reference compresses its batches as ingest does (`config.compression`): a codec
changes what a batch costs the client and the broker alike, so ingest is held to the raw producer
with its own settings. With a codec, the uncompressed rate is measured first, for comparison.

They are measured first, and again (the producer in full, Postgres on a quarter of the rows) once
every other phase is done: a machine whose speed drifts during the run shows in the report as
the change between the two, the uncertainty its ratios carry.
"""

import asyncio
import time
from typing import Any

from stageline_bench.config import BenchConfig
from stageline_bench.events import raw_values
from stageline_bench.journeys import journey_stages
from stageline_bench.kafka_raw import Record, by_partition, produce
from stageline_bench.pg_raw import raw_postgres
from stageline_bench.progress import log
from stageline_bench.results import Results
from stageline_bench.stack import BenchStack, plain_url


def _records(config: BenchConfig) -> dict[int, list[Record]]:
    """The raw producer's keyed ~200-byte values, by partition."""
    return by_partition(raw_values(config.raw_messages, config.customers, seed=3), config.partitions)


def _producer(stack: BenchStack, config: BenchConfig, phase: str, compression: str,
              records: dict[int, list[Record]]) -> tuple[float, float]:
    """(events/s, seconds) of the raw producer on a topic of its own."""
    log.info("raw producer: %d keyed ~200-byte values, create_batch/send_batch, acks=all, "
             "compression %s", config.raw_messages, compression)
    seconds = asyncio.run(produce(stack.bootstrap, stack.topic(phase), records, config.partitions,
                                  compression))
    rate = config.raw_messages / seconds
    log.info("raw producer: %.0f events/s (%.1fs), compression %s", rate, seconds, compression)
    return rate, seconds


def _postgres(stack: BenchStack, config: BenchConfig, phase: str, rows: int) -> tuple[float, dict[str, Any]]:
    """(rows/s, details) of the raw Postgres write in a database of its own."""
    url = stack.database(phase)
    journeys = [(name, stages[0]) for name, stages in journey_stages(config.journeys_file)]
    log.info("raw Postgres: %d rows, COPY + INSERT ON CONFLICT + stage upsert (%d journeys), "
             "%d rows per transaction", rows, len(journeys), config.raw_rows_per_txn)
    postgres_before, client_before = stack.postgres_cpu_s(), time.process_time()
    spent = asyncio.run(raw_postgres(plain_url(url), rows, config.customers,
                                     config.raw_rows_per_txn, journeys))
    postgres_after, client_after = stack.postgres_cpu_s(), time.process_time()
    rate = rows / spent
    per_row = 1e6 / rows
    cpu = {"cpu_us_per_row_client": (client_after - client_before) * per_row}
    if postgres_before is not None and postgres_after is not None:
        cpu["cpu_us_per_row_postgres"] = (postgres_after - postgres_before) * per_row
    log.info("raw Postgres: %.0f rows/s (%.1fs in the database); CPU per row: %s", rate, spent,
             ", ".join(f"{k.removeprefix('cpu_us_per_row_')} {v:.1f} µs" for k, v in cpu.items()))
    return rate, {"postgres_seconds": spent, "rows": rows, "journeys": [j for j, _ in journeys],
                  "postgres_cpu": cpu}


def run(stack: BenchStack, config: BenchConfig, results: Results) -> None:
    records = _records(config)
    if config.compression != "none":
        rate, _ = _producer(stack, config, "raw_plain", "none", records)
        results.add("raw.producer.uncompressed.events_per_s",
                    "Raw producer, uncompressed (aiokafka send_batch, ~200 B keyed)", rate, "events/s")
        stack.release("raw_plain")
    rate, seconds = _producer(stack, config, "raw", config.compression, records)
    del records
    results.add("raw.producer.events_per_s",
                f"Raw producer (aiokafka send_batch, ~200 B keyed, {config.compression})", rate, "events/s")
    results.details["raw"] = {"producer_seconds": seconds, "compression": config.compression}
    postgres_reference(stack, config, results)


def postgres_reference(stack: BenchStack, config: BenchConfig, results: Results) -> None:
    """The raw Postgres rate alone: the stager's and the held pipeline's reference, measured by a
    run without the raw phase (--only stager,pipeline) too."""
    rate, details = _postgres(stack, config, "raw", config.raw_rows)
    results.add("raw.postgres.rows_per_s", "Raw Postgres (asyncpg COPY + upserts, 5,000/txn)",
                rate, "rows/s")
    results.details.setdefault("raw", {}).update(details)


def recheck(stack: BenchStack, config: BenchConfig, results: Results) -> None:
    """Both references again, after every other phase: how far the machine's speed moved."""
    log.info("raw limits again, after the other phases: has the machine's speed moved?")
    rate, seconds = _producer(stack, config, "raw_end", config.compression, _records(config))
    results.add("raw.producer.end.events_per_s", "Raw producer, again at the end", rate, "events/s")
    rows = max(config.raw_rows_per_txn, config.raw_rows // 4)
    rate, details = _postgres(stack, config, "raw_end", rows)
    results.add("raw.postgres.end.rows_per_s", "Raw Postgres, again at the end", rate, "rows/s")
    results.details["raw_end"] = {"producer_seconds": seconds, **details}
