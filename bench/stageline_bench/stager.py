"""Phase "stager": events/s applied to Postgres from a topic preloaded with wire records.

It runs once per customer count (config.stager_customers, 100k and 1M by default), each on a
database and topic of its own, and reports how the cost per event grew with the customers: more
customers mean larger tables and indexes, and fewer events per customer to share a row's work.

The stager starts once the topic holds every record; the rate is taken from its first stored
offsets to its last, so process start and the consumer-group join are left out (and reported
separately). Applied means: deduplicated, stored, staged in every journey, transitions and
counters written, offsets stored, all in one transaction per polled batch.
"""

import asyncio
import time
from typing import Any

import asyncpg

from stageline_bench.config import BenchConfig, customers_label
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


def _measure(stack: BenchStack, config: BenchConfig, customers: int, phase: str) -> dict[str, Any]:
    """One stager run over a topic preloaded with config.events records of `customers` customers."""
    url, topic = stack.database(phase), stack.topic(phase)
    log.info("%s: preloading %d events over %d customers", phase, config.events, customers)
    records = list(wire_records(f"s{stack.run_id}{customers_label(customers)}", config.events,
                                customers, seed=5))
    check_wire_format(records[0][1])
    preload_s = asyncio.run(produce(stack.bootstrap, topic, by_partition(records, config.partitions),
                                    config.partitions, config.compression))
    del records
    log.info("%s: topic preloaded in %.1fs; starting %d stager(s)", phase, preload_s, config.stagers)
    started = time.monotonic()
    try:
        services = start_stagers(stack, config, phase, url, topic)
        meter = CpuMeter(services, stack.infrastructure_cpu_s).start()
        samples = asyncio.run(watch_applied(plain_url(url), topic, config.events, phase))
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
    finally:
        stop_live(stack, config, phase)
    if outcome["touchpoints"] != config.events:
        raise RuntimeError(f"stager stored {outcome['touchpoints']} touchpoints of {config.events}")
    log.info("%s: %.0f events/s (%.1fs from first commit; %.1fs with start-up); %d stager(s) "
             "used %.2f CPU cores", phase, rate, done[0] - first[0], done[0] - started, config.stagers,
             stager_cores)
    log.info("%s: machine busy %.2f cores; CPU per event: %s", phase, cpu["machine_busy_cores"],
             ", ".join(f"{k.removeprefix('cpu_us_per_event_')} {v:.0f} µs" for k, v in cpu.items()
                       if k.startswith("cpu_us_per_event_")))
    return {
        "customers": customers, "events_per_s": rate,
        "preload_seconds": preload_s, "seconds_applying": done[0] - first[0],
        "seconds_including_start": done[0] - started,
        "events_per_s_including_start": config.events / (done[0] - started),
        "rate_includes_start": includes_start,
        "cpu": cpu,
        "stager_cpu_cores": stager_cores,  # all stagers, averaged over their life, start-up included
        **outcome,
    }


def _growth(small: dict[str, Any], large: dict[str, Any]) -> dict[str, float]:
    """How the cost per event grew from the fewest customers to the most: large / small."""
    growth = {"events_per_s": large["events_per_s"] / small["events_per_s"]}
    for key, value in small["cpu"].items():
        if key.startswith("cpu_us_per_event_") and value > 0 and key in large["cpu"]:
            growth[key] = large["cpu"][key] / value
    return growth


def run(stack: BenchStack, config: BenchConfig, results: Results) -> None:
    """The stager at each of config.stager_customers, then how its cost per event grew."""
    runs: dict[str, dict[str, Any]] = {}
    results.details["stager"] = {"stagers": config.stagers, "events": config.events,
                                 "by_customers": runs}
    for customers in config.stager_customers:
        label = customers_label(customers)
        phase = f"stager_{label.lower()}"
        runs[label] = _measure(stack, config, customers, phase)
        results.add(f"stager.{label}.events_per_s",
                    f"Stager ({config.events:,} events, {customers:,} customers)",
                    runs[label]["events_per_s"], "events/s")
        stack.release(phase)
    if len(runs) > 1:
        small, large = runs[customers_label(min(config.stager_customers))], \
            runs[customers_label(max(config.stager_customers))]
        growth = _growth(small, large)
        results.details["stager"]["growth"] = growth
        results.add("stager.growth.events_per_s", "Stager: rate at the most customers / at the fewest",
                    growth["events_per_s"], "ratio")
        if "cpu_us_per_event_total" in growth:
            results.add("stager.growth.cpu_us_per_event", "Stager: machine CPU per event at the most "
                        "customers / at the fewest", growth["cpu_us_per_event_total"], "ratio")
        log.info("stager: from %s to %s customers, events/s %+.0f%%; CPU per event: %s",
                 small["customers"], large["customers"], (growth["events_per_s"] - 1) * 100,
                 ", ".join(f"{k.removeprefix('cpu_us_per_event_')} {v - 1:+.0%}" for k, v in growth.items()
                           if k.startswith("cpu_us_per_event_")))
