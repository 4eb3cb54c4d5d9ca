"""Phase "raw": the references every ratio is taken against, on the same broker and Postgres."""

import asyncio
import time

from stageline_bench.config import BenchConfig
from stageline_bench.events import raw_values
from stageline_bench.journeys import journey_stages
from stageline_bench.kafka_raw import by_partition, produce
from stageline_bench.pg_raw import raw_postgres
from stageline_bench.progress import log
from stageline_bench.results import Results
from stageline_bench.stack import BenchStack, plain_url


def run(stack: BenchStack, config: BenchConfig, results: Results) -> None:
    log.info("raw producer: %d keyed ~200-byte values, create_batch/send_batch, acks=all",
             config.raw_messages)
    records = by_partition(raw_values(config.raw_messages, config.customers, seed=3), config.partitions)
    seconds = asyncio.run(produce(stack.bootstrap, stack.topic("raw"), records, config.partitions))
    del records
    rate = config.raw_messages / seconds
    results.add("raw.producer.events_per_s", "Raw producer (aiokafka send_batch, ~200 B keyed)",
                rate, "events/s")
    log.info("raw producer: %.0f events/s (%.1fs)", rate, seconds)

    url = stack.database("raw")
    first = journey_stages(config.journeys_file)
    journeys = [(name, stages[0]) for name, stages in first]
    log.info("raw Postgres: %d rows, COPY + INSERT ON CONFLICT + stage upsert (%d journeys), "
             "%d rows per transaction", config.raw_rows, len(journeys), config.raw_rows_per_txn)
    postgres_before, client_before = stack.postgres_cpu_s(), time.process_time()
    spent = asyncio.run(raw_postgres(plain_url(url), config.raw_rows, config.customers,
                                     config.raw_rows_per_txn, journeys))
    postgres_after, client_after = stack.postgres_cpu_s(), time.process_time()
    rate = config.raw_rows / spent
    results.add("raw.postgres.rows_per_s", "Raw Postgres (asyncpg COPY + upserts, 5,000/txn)",
                rate, "rows/s")
    per_row = 1e6 / config.raw_rows
    cpu = {"cpu_us_per_row_client": (client_after - client_before) * per_row}
    if postgres_before is not None and postgres_after is not None:
        cpu["cpu_us_per_row_postgres"] = (postgres_after - postgres_before) * per_row
    results.details["raw"] = {"producer_seconds": seconds, "postgres_seconds": spent,
                              "journeys": [j for j, _ in journeys], "postgres_cpu": cpu}
    log.info("raw Postgres: %.0f rows/s (%.1fs in the database); CPU per row: %s", rate, spent,
             ", ".join(f"{k.removeprefix('cpu_us_per_row_')} {v:.1f} µs" for k, v in cpu.items()))
