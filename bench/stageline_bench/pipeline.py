"""Phase "pipeline": the whole pipeline sustained, ingest and stager running together.

The highest concurrency drives ingest for --pipeline-seconds while the stager applies; the rate
is every record applied divided by the time from the first request to the last record applied,
so a stager that falls behind pulls the figure down.
"""

import asyncio
import os
import time

import asyncpg

from stageline_bench.config import BenchConfig
from stageline_bench.cpu import CpuMeter
from stageline_bench.e2e import prepare
from stageline_bench.ingest import post_events
from stageline_bench.live import Live
from stageline_bench.offsets import settle, watch_applied
from stageline_bench.progress import log
from stageline_bench.results import Results
from stageline_bench.stack import BenchStack


async def _touchpoints(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM touchpoints"))
    finally:
        await conn.close()


def run(stack: BenchStack, live: Live, config: BenchConfig, results: Results) -> None:
    connections = max(config.concurrencies)
    log.info("pipeline: %d connections for %gs with the stager running", connections,
             config.pipeline_seconds)
    # A few events through first: the stager has joined its group and is consuming.
    asyncio.run(prepare(live, 100, config.batch, "pw"))
    _, base = asyncio.run(settle(live.database, live.topic, quiet_s=0.2))
    stored_before = asyncio.run(_touchpoints(live.database))
    meter = CpuMeter(live.services, stack.infrastructure_cpu_s).start()
    started = time.monotonic()
    result = post_events(live.ingest.base_url, live.write_key, config, f"p{live.tag}",
                         connections, config.pipeline_seconds)
    stopped = time.monotonic()
    accepted = result.ok * config.batch
    if accepted == 0:
        raise RuntimeError(f"pipeline: ingest accepted nothing ({result.failed} failures)")
    samples = asyncio.run(watch_applied(live.database, live.topic, base + accepted, "pipeline"))
    at_stop = samples[0][1]  # polled right after the load generator returned
    # Requests cut off when the load stopped may still have been produced: count those too.
    finished, applied = asyncio.run(settle(live.database, live.topic))
    rate = (applied - base) / (finished - started)
    cpu = meter.read(applied - base)
    # Every event id the load generator sends is unique: a repeat would be skipped, not applied.
    duplicates = applied - base - (asyncio.run(_touchpoints(live.database)) - stored_before)
    if duplicates:
        log.warning("pipeline: %d records were duplicates; the figure overstates the pipeline",
                    duplicates)
    results.add("pipeline.events_per_s", f"Whole pipeline, sustained ({connections} connections)",
                rate, "events/s")
    results.details["pipeline"] = {
        "connections": connections, "events_accepted": accepted, "events_applied": applied - base,
        "load_seconds": stopped - started, "seconds_to_last_applied": finished - started,
        "ingest_events_per_s": accepted / result.duration_s,
        "backlog_when_load_stopped": max(0, accepted - (at_stop - base)),
        "requests_failed": result.failed, "generator": result.generator, "duplicates": duplicates,
        "cpu": cpu,
    }
    log.info("pipeline: %.0f events/s sustained (ingest took %.0f events/s; %d applied in %.1fs)",
             rate, accepted / result.duration_s, applied - base, finished - started)
    log.info("pipeline: machine busy %.2f cores; CPU per event: %s; at that cost %d cores carry "
             "at most %.0f events/s", cpu["machine_busy_cores"],
             ", ".join(f"{k.removeprefix('cpu_us_per_event_')} {v:.0f} µs" for k, v in cpu.items()
                       if k.startswith("cpu_us_per_event_")),
             os.cpu_count() or 1, cpu["ceiling_events_per_s"])
