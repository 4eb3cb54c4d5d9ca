"""The whole pipeline held at a steady rate: does the stager keep up?

The closed-loop figure (pipeline.py) is what the two cores carry when ingest takes all it can,
its lag growing meanwhile. Here an open-loop sender holds a rate for --pipeline-seconds with the
stager running: --pipeline-share (60%) of the raw Postgres rate measured in the same run, so the
target moves with the machine's speed as the stager's does (or a fixed --pipeline-rate). The lag
(acknowledged, not yet applied) is sampled twice a second. A pipeline that sustains the rate
stays less than a second of events behind throughout, and is back to 0 soon after the load stops;
one that does not falls further behind every second.
"""

import asyncio
import urllib.request
from statistics import fmean

from prometheus_client.parser import text_string_to_metric_families

from stageline_bench.config import BenchConfig
from stageline_bench.cpu import CpuMeter
from stageline_bench.e2e import prepare
from stageline_bench.ingest import basic_auth
from stageline_bench.live import Live
from stageline_bench.progress import log
from stageline_bench.results import Results
from stageline_bench.sampler import Sampler
from stageline_bench.stack import BenchStack
from stageline_bench.steady import SteadyLoad

# Requests in flight at once: at 300 requests/s, room for answers up to ~200 ms late.
CONNECTIONS = 64


def _stager_batches(live: Live) -> tuple[float, float]:
    """(records, batches) the stagers applied so far, from their batch-size histograms."""
    records = batches = 0.0
    for stager in live.stagers:
        with urllib.request.urlopen(f"{stager.base_url}/metrics", timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "stageline_stager_batch_records_sum":
                    records += sample.value
                elif sample.name == "stageline_stager_batch_records_count":
                    batches += sample.value
    return records, batches


async def _run(stack: BenchStack, live: Live, config: BenchConfig, results: Results) -> None:
    raw_postgres = results.value("raw.postgres.rows_per_s")
    if raw_postgres is None and config.pipeline_rate is None:
        raise RuntimeError("no raw Postgres rate measured in this run to hold the pipeline at a share of")
    rate, seconds = config.held_rate(raw_postgres or 0.0), config.pipeline_seconds
    baseline = await prepare(live, 1_000 if config.quick else 10_000, config.batch, "s")
    log.info("pipeline, steady: %d events/s for %gs with the stager running", rate, seconds)
    load = SteadyLoad(live.ingest.base_url, basic_auth(live.write_key), rate, config.batch,
                      baseline.pool, f"{live.tag}s", connections=CONNECTIONS)
    load.prebuild(seconds)
    log.info("pipeline, steady: request bodies built; the load starts")
    sampler = Sampler(live, baseline.applied, load, seconds, "pipeline, steady")
    records_before, batches_before = _stager_batches(live)
    meter = CpuMeter(live.services, stack.infrastructure_cpu_s).start()
    async with asyncio.TaskGroup() as group:
        group.create_task(load.run(seconds))
        group.create_task(sampler.run())
    cpu = meter.read(load.acked_events)
    records_after, batches_after = _stager_batches(live)
    records, batches = records_after - records_before, batches_after - batches_before
    per_batch = records / batches if batches else 0.0
    lags = [lag for _, lag in sampler.lags]
    max_lag = max(lags, default=0)
    results.add("pipeline.steady.events_per_s", "Whole pipeline at a steady rate: load kept",
                load.kept_rate, "events/s")
    results.add("pipeline.steady.max_lag_events", "Whole pipeline at a steady rate: largest lag",
                max_lag, "events")
    results.add("pipeline.steady.max_lag_s", "Whole pipeline at a steady rate: largest lag, in "
                "seconds of load", max_lag / rate, "s")
    results.add("pipeline.steady.drain_s", "Whole pipeline at a steady rate: lag back to 0",
                sampler.drain_s, "s")
    third = max(1, len(lags) // 3)  # at least one sample, so that lags[-third:] is the tail
    results.details["pipeline_steady"] = {
        "rate_asked": rate, "share_of_raw_postgres": rate / raw_postgres if raw_postgres else None,
        "seconds": load.elapsed, "connections": CONNECTIONS,
        "requests_failed": load.failed, "events_acked": load.acked_events,
        # the lag's mean over the first and the last third of the load: growing, or not
        "mean_lag_first_third": fmean(lags[:third]) if lags else 0.0,
        "mean_lag_last_third": fmean(lags[-third:]) if lags else 0.0,
        "stager_batches": batches, "stager_records_per_batch": per_batch,
        "lags": sampler.lags, "cpu": cpu,
    }
    log.info("pipeline, steady: kept %.0f events/s; largest lag %d events (%.2f s of load), back "
             "to 0 %.2fs after the load; machine busy %.2f cores; %.0f records per stager batch",
             load.kept_rate, max_lag, max_lag / rate, sampler.drain_s, cpu["machine_busy_cores"],
             per_batch)


def run(stack: BenchStack, live: Live, config: BenchConfig, results: Results) -> None:
    asyncio.run(_run(stack, live, config, results))
