"""Phase "ingest": events/s through HTTP, batches of 100, at each concurrency; no stager running.

Every 2xx ingest sends comes after the broker acknowledged the batch (acks=all), so accepted
events/s is the durable intake rate. Then the same at ingest's floor (stageline_bench.ingest_floor:
ingest forwarding each event unchecked), the most any ingest that checks its events could take.
"""

import base64
import os
import zlib
from typing import Any

from stageline_bench.config import BenchConfig
from stageline_bench.cpu import CpuMeter
from stageline_bench.events import batch_templates
from stageline_bench.loadgen import LoadResult, LoadSpec, run_load
from stageline_bench.progress import log
from stageline_bench.results import Results
from stageline_bench.stack import BenchStack, Service

TEMPLATES = 500  # distinct request bodies per load run (customers spread over the pool)
# One uvicorn worker per core: measured best on 2 cores shared with the broker and wrk (1 worker
# leaves a core idle; 3 only add switching). --env STAGELINE_INGEST_WORKERS=N overrides.
WORKERS = os.cpu_count() or 1
LABELS = {"ingest": "Ingest", "ingest_floor": "Ingest floor"}


def basic_auth(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def post_events(
    base_url: str, write_key: str, config: BenchConfig, tag: str, connections: int, seconds: float,
    with_ids: bool = True,
) -> LoadResult:
    """A closed-loop run of POST /v1/events with unique event ids (tag makes them unique per run),
    or with none, so that ingest assigns them."""
    templates = TEMPLATES if not config.quick else 20
    bodies = batch_templates(tag, templates, config.batch, config.customers,
                             seed=zlib.crc32(tag.encode()), with_ids=with_ids)
    spec = LoadSpec(
        base_url=base_url, method="POST", paths=["/v1/events"], connections=connections,
        duration_s=seconds, expect_status=202, bodies=[b.decode() for b in bodies],
        headers={"Authorization": basic_auth(write_key), "Content-Type": "application/json"},
    )
    return run_load(spec, config.generator)


def _measure(
    stack: BenchStack, ingest: Service, key: str, config: BenchConfig, results: Results,
    connections: int, with_ids: bool, name: str = "ingest",
) -> dict[str, Any]:
    """One load run: its figures into results (prefix <name>.c<connections>, plus `_without_ids`
    for events sent without ids), its CPU and generator details returned."""
    cpu_before, broker_before = ingest.cpu_s(), stack.broker_cpu_s()
    meter = CpuMeter([ingest]).start()
    result = post_events(ingest.base_url, key, config, f"i{connections}{int(with_ids)}{stack.run_id}",
                         connections, config.ingest_seconds, with_ids)
    ingest_cores = (ingest.cpu_s() - cpu_before) / result.duration_s
    generator_cores = result.cpu_s / result.duration_s
    broker_after = stack.broker_cpu_s()
    broker_cores = None if broker_before is None or broker_after is None else \
        (broker_after - broker_before) / result.duration_s
    cpu = meter.read(result.ok * config.batch)
    if result.ok == 0:
        raise RuntimeError(f"ingest accepted nothing at {connections} connections "
                           f"({result.failed} failures)")
    rate = result.ok * config.batch / result.duration_s
    prefix = f"{name}.c{connections}" + ("" if with_ids else "_without_ids")
    label = f"{LABELS[name]}, {connections} connections" + ("" if with_ids else ", events without ids")
    results.add(f"{prefix}.events_per_s", label, rate, "events/s")
    results.add(f"{prefix}.p50_ms", f"{label}, request p50", result.p50_ms, "ms")
    results.add(f"{prefix}.p99_ms", f"{label}, request p99", result.p99_ms, "ms")
    log.info("%s: %.0f events/s, p50 %.1f ms, p99 %.1f ms, %d failed; "
             "CPU: ingest %.2f cores, %s %.2f cores, broker %s cores, machine busy %.2f of %d; "
             "ingest %.1f µs per event", label, rate, result.p50_ms, result.p99_ms,
             result.failed, ingest_cores, result.generator, generator_cores,
             "?" if broker_cores is None else f"{broker_cores:.2f}", cpu["machine_busy_cores"],
             os.cpu_count() or 1, cpu.get("cpu_us_per_event_ingest", 0.0))
    return {"requests_ok": result.ok, "requests_failed": result.failed,
            "seconds": result.duration_s, "max_ms": result.max_ms, "generator": result.generator,
            "ingest_cpu_cores": ingest_cores, "generator_cpu_cores": generator_cores,
            "broker_cpu_cores": broker_cores, "cpu": cpu}


def run(stack: BenchStack, config: BenchConfig, results: Results) -> None:
    url = stack.database("ingest")
    ingest = stack.start_service("ingest", "ingest", url, stack.topic("ingest"),
                                 env={"STAGELINE_INGEST_WORKERS": str(WORKERS)})
    key = stack.keys[url]["write"]
    post_events(ingest.base_url, key, config, f"iw{stack.run_id}", 4, 1.0 if config.quick else 3.0)
    details = {}
    for connections in config.concurrencies:
        log.info("ingest: %d connections for %gs", connections, config.ingest_seconds)
        details[str(connections)] = _measure(stack, ingest, key, config, results, connections, True)
    # Clients that send no event ids (ingest assigns each a UUIDv7), at the highest concurrency.
    connections = max(config.concurrencies)
    log.info("ingest: %d connections for %gs, events without ids", connections, config.ingest_seconds)
    without_ids = _measure(stack, ingest, key, config, results, connections, False)
    workers = int(config.service_env.get("STAGELINE_INGEST_WORKERS", WORKERS))
    stack.stop_services("ingest")
    stack.release("ingest")  # the floor starts on an empty broker, as ingest did
    results.details["ingest"] = {"batch": config.batch, "workers": workers, "by_connections": details,
                                 "without_ids": {str(connections): without_ids},
                                 "floor": _floor(stack, config, results)}


def _floor(stack: BenchStack, config: BenchConfig, results: Results) -> dict[str, Any]:
    """Ingest's floor at each concurrency: the same service forwarding events unchecked
    (stageline_bench.ingest_floor), the most any ingest that checks its events could take."""
    url = stack.database("ingest_floor")
    floor = stack.start_service("ingest", "ingest_floor", url, stack.topic("ingest_floor"),
                                env={"STAGELINE_INGEST_WORKERS": str(WORKERS)},
                                module="stageline_bench.ingest_floor")
    key = stack.keys[url]["write"]
    post_events(floor.base_url, key, config, f"fw{stack.run_id}", 4, 1.0 if config.quick else 3.0)
    details = {}
    for connections in config.concurrencies:
        log.info("ingest floor (events forwarded unchecked): %d connections for %gs",
                 connections, config.ingest_seconds)
        details[str(connections)] = _measure(stack, floor, key, config, results, connections, True,
                                             "ingest_floor")
    stack.stop_services("ingest_floor")
    stack.release("ingest_floor")
    return details
