"""Phase "stager": events/s applied to Postgres from a topic preloaded with wire records.

The stager starts once the topic holds every record; the rate is taken from its first stored
offsets to its last, so process start and the consumer-group join are left out (and reported
separately). Applied means: deduplicated, stored, staged in every journey, transitions and
counters written, offsets stored, all in one transaction per polled batch.
"""

import asyncio
import time

import asyncpg

from stageline_bench.config import BenchConfig
from stageline_bench.cpu import CpuMeter
from stageline_bench.events import check_wire_format, wire_records
from stageline_bench.kafka_raw import by_partition, produce
from stageline_bench.live import start_stagers, stop_live
from stageline_bench.offsets import watch_applied
from stageline_bench.progress import log
from stageline_bench.results import Results
from stageline_bench.stack import BenchStack, plain_url


async def _outcome(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        return {
            "touchpoints": int(await conn.fetchval("SELECT count(*) FROM touchpoints")),
            "transitions": int(await conn.fetchval("SELECT count(*) FROM stage_transitions")),
            "staged_customer_rows": int(await conn.fetchval(
                "SELECT count(*) FROM customer_stages WHERE stage IS NOT NULL")),
            "counted": int(await conn.fetchval("SELECT coalesce(sum(customers), 0) FROM stage_counts")),
        }
    finally:
        await conn.close()


def run(stack: BenchStack, config: BenchConfig, results: Results) -> None:
    url, topic = stack.database("stager"), stack.topic("stager")
    log.info("stager: preloading %d events over %d customers", config.events, config.customers)
    records = list(wire_records(f"s{stack.run_id}", config.events, config.customers, seed=5))
    check_wire_format(records[0][1])
    preload_s = asyncio.run(produce(stack.bootstrap, topic, by_partition(records, config.partitions),
                                    config.partitions, config.compression))
    del records
    log.info("stager: topic preloaded in %.1fs; starting %d stager(s)", preload_s, config.stagers)
    started = time.monotonic()
    services = start_stagers(stack, config, "stager", url, topic)
    meter = CpuMeter(services, stack.infrastructure_cpu_s).start()
    samples = asyncio.run(watch_applied(plain_url(url), topic, config.events, "stager"))
    first = next(s for s in samples if s[1] > 0)
    done = samples[-1]
    # Before the first stored offsets the stager was starting and joining the group. A topic
    # applied in a batch or two (--quick) leaves no span to measure: count the start-up then.
    includes_start = done[0] - first[0] < 1.0
    rate = config.events / (done[0] - started) if includes_start else \
        (done[1] - first[1]) / (done[0] - first[0])
    stager_cores = sum(s.cpu_s() for s in services) / (done[0] - started)
    cpu = meter.read(config.events)
    outcome = asyncio.run(_outcome(plain_url(url)))
    if outcome["touchpoints"] != config.events:
        raise RuntimeError(f"stager stored {outcome['touchpoints']} touchpoints of {config.events}")
    results.add("stager.events_per_s", f"Stager ({config.events:,} events, {config.customers:,} "
                "customers)", rate, "events/s")
    results.details["stager"] = {
        "preload_seconds": preload_s, "seconds_applying": done[0] - first[0],
        "seconds_including_start": done[0] - started,
        "events_per_s_including_start": config.events / (done[0] - started),
        "rate_includes_start": includes_start,
        "stagers": config.stagers,
        "cpu": cpu,
        "stager_cpu_cores": stager_cores,  # all stagers, averaged over their life, start-up included
        **outcome,
    }
    log.info("stager: %.0f events/s (%.1fs from first commit; %.1fs with start-up); %d stager(s) "
             "used %.2f CPU cores", rate, done[0] - first[0], done[0] - started, config.stagers,
             stager_cores)
    log.info("stager: machine busy %.2f cores; CPU per event: %s", cpu["machine_busy_cores"],
             ", ".join(f"{k.removeprefix('cpu_us_per_event_')} {v:.0f} µs" for k, v in cpu.items()
                       if k.startswith("cpu_us_per_event_")))
    stop_live(stack, config, "stager")
