"""`python -m stageline_bench [run|soak] [options]`: the command line behind `make bench` and `make soak`."""

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import stageline_bench
from stageline_bench import api, e2e, ingest, pipeline, pipeline_steady, raw, report, soak, stager, webhooks
from stageline_bench.config import PHASES, BenchConfig, quick
from stageline_bench.live import start_live, stop_live
from stageline_bench.loadgen import choose
from stageline_bench.machine import machine_info, wrk_version
from stageline_bench.progress import setup
from stageline_bench.results import Results
from stageline_bench.stack import BenchStack

log = logging.getLogger("stageline_bench")

SIZES = {  # flag -> (config field, type, help)
    "--raw-messages": ("raw_messages", int, "raw producer: records (default 1,000,000)"),
    "--raw-rows": ("raw_rows", int, "raw Postgres: rows (default 1,000,000)"),
    "--ingest-seconds": ("ingest_seconds", float, "ingest: seconds per concurrency (default 20)"),
    "--batch": ("batch", int, "events per HTTP request (default 100)"),
    "--events": ("events", int, "stager: events preloaded (default 1,000,000)"),
    "--customers": ("customers", int, "load generators and raw references: customers (default 100,000)"),
    "--pipeline-seconds": ("pipeline_seconds", float, "whole pipeline: seconds (default 30)"),
    "--pipeline-rate": ("pipeline_rate", int, "whole pipeline held at this steady events/s "
                        "(default: --pipeline-share of raw Postgres)"),
    "--pipeline-share": ("pipeline_share", float, "whole pipeline held at this share of the raw Postgres "
                         "rate measured in the run (default 0.6)"),
    "--rate": ("rate", int, "e2e and soak: steady events/s (default 2,000)"),
    "--seconds": ("seconds", float, "e2e duration (default 60); soak duration (default 600)"),
    "--webhook-deliveries": ("webhook_deliveries", int, "webhooks: deliveries waiting for one dispatcher "
                             "(default 100,000)"),
    "--dispatchers": ("dispatchers", int, "webhooks: dispatcher processes (default 1)"),
    "--api-customers": ("api_customers", int, "API dataset: customers (default 1,000,000)"),
    "--touchpoints": ("touchpoints", int, "API dataset: touchpoints (default 10,000,000)"),
    "--hot-customers": ("hot_customers", int, "API dataset: customers with 200 touchpoints (default 1%%)"),
    "--api-seconds": ("api_seconds", float, "API: seconds per measurement (default 10)"),
    "--api-connections": ("api_connections", int, "API: connections (default 1)"),
    "--partitions": ("partitions", int, "topic partitions (default 6)"),
    "--stagers": ("stagers", int, "stager processes in the consumer group (default 3)"),
}


def parse(argv: list[str]) -> tuple[argparse.Namespace, BenchConfig]:
    parser = argparse.ArgumentParser(prog="python -m stageline_bench",
                                     description=stageline_bench.__doc__)
    parser.add_argument("mode", nargs="?", choices=["run", "soak"], default="run",
                        help="run: the benchmark (make bench); soak: minutes of steady load (make soak)")
    parser.add_argument("--quick", action="store_true", help="a few thousand events: the CI smoke")
    for flag, (_, kind, text) in SIZES.items():
        parser.add_argument(flag, type=kind, help=text)
    parser.add_argument("--concurrency", help="ingest connections, comma-separated (default 8,64)")
    parser.add_argument("--stager-customers",
                        help="stager: customers of each run, comma-separated (default 100000,1000000)")
    parser.add_argument("--only", help=f"phases to run, comma-separated, from {','.join(PHASES)}")
    parser.add_argument("--generator", choices=["auto", "wrk", "asyncio"], default="auto",
                        help="load generator: wrk when installed (auto), or the asyncio one")
    parser.add_argument("--results-dir", type=Path, default=Path("bench/results"))
    parser.add_argument("--log-dir", type=Path, help="service logs (default: a new temp directory)")
    parser.add_argument("--journeys-file", type=Path, help="journeys for the services (default: packaged)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for every service, e.g. STAGELINE_LINGER_MS=0")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
                        help="use this broker (default: KAFKA_BOOTSTRAP_SERVERS, else start Tansu)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="use this Postgres server; the bench creates and drops its own databases "
                             "on it (default: DATABASE_URL, else start an embedded PostgreSQL)")
    args = parser.parse_args(argv)

    config = BenchConfig(generator=args.generator, results_dir=args.results_dir,
                         journeys_file=args.journeys_file,
                         service_env=dict(item.split("=", 1) for item in args.env))
    if args.quick:
        config = quick(config)
    if args.mode == "soak":
        config = dataclasses.replace(config, seconds=20.0 if args.quick else 600.0)
    overrides: dict[str, Any] = {field: getattr(args, flag[2:].replace("-", "_"))
                                 for flag, (field, _, _) in SIZES.items()
                                 if getattr(args, flag[2:].replace("-", "_")) is not None}
    if args.concurrency:
        overrides["concurrencies"] = tuple(int(c) for c in args.concurrency.split(","))
    if args.stager_customers:
        overrides["stager_customers"] = tuple(int(c) for c in args.stager_customers.split(","))
    if args.only:
        unknown = set(args.only.split(",")) - set(PHASES)
        if unknown:
            parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
        overrides["phases"] = tuple(p for p in PHASES if p in args.only.split(","))
    return args, dataclasses.replace(config, **overrides)


def _phase(results: Results, name: str, body: Callable[[], None]) -> None:
    """Run one phase; a failure is reported and the run goes on to the next phase."""
    try:
        body()
    except Exception as exc:  # the report says which phase failed and why; exit code is 1
        log.exception("phase %s failed", name)
        results.errors[name] = f"{type(exc).__name__}: {exc}"


def _run_phases(stack: BenchStack, config: BenchConfig, results: Results) -> None:
    steps: dict[str, Callable[[], None]] = {
        "raw": lambda: raw.run(stack, config, results),
        "ingest": lambda: ingest.run(stack, config, results),
        "stager": lambda: stager.run(stack, config, results),
    }
    if "raw" not in config.phases and {"stager", "pipeline"} & set(config.phases):
        # Their targets are ratios to raw Postgres measured in the same run.
        _phase(results, "raw", lambda: raw.postgres_reference(stack, config, results))
        _phase(results, "raw release", partial(stack.release, "raw"))
    for name, body in steps.items():
        if name in config.phases:
            _phase(results, name, body)
            stop_live(stack, config, name)
            _phase(results, f"{name} release", partial(stack.release, name))
    if "webhooks" in config.phases:
        _phase(results, "webhooks", lambda: webhooks.throughput(stack, config, results))
        _phase(results, "webhooks release", partial(stack.release, "webhooks"))
    if {"pipeline", "e2e", "webhooks"} & set(config.phases):
        try:
            live = start_live(stack, config)
            if "pipeline" in config.phases:
                _phase(results, "pipeline", lambda: pipeline.run(stack, live, config, results))
                _phase(results, "pipeline steady", lambda: pipeline_steady.run(stack, live, config, results))
            if "e2e" in config.phases:
                _phase(results, "e2e", lambda: e2e.run(live, config, results))
            if "webhooks" in config.phases:
                _phase(results, "webhooks e2e", lambda: webhooks.latency(live, config, results))
        finally:
            stop_live(stack, config, "live")
        _phase(results, "live release", partial(stack.release, "live"))
    if "api" in config.phases:
        _phase(results, "api", lambda: api.run(stack, config, results))
        stack.stop_services("api")
        _phase(results, "api release", partial(stack.release, "api"))
    if "raw" in config.phases and len(config.phases) > 1:
        _phase(results, "raw_end", lambda: raw.recheck(stack, config, results))


def main(argv: list[str] | None = None) -> int:
    setup()
    args, config = parse(sys.argv[1:] if argv is None else argv)
    generator = choose(config.generator)
    generator_text = (wrk_version() or "wrk") + " with a Lua script" if generator == "wrk" \
        else "asyncio generator (wrk not installed)" if config.generator == "auto" else "asyncio generator"
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="stageline-bench-logs-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    if args.mode == "soak":
        generator_text = "not used (the soak's load is the fixed-rate asyncio sender)"
    log.info("%s: closed-loop load generator: %s; service logs in %s", args.mode, generator_text,
             log_dir)
    started = datetime.now(UTC)
    stack = BenchStack(dataclasses.replace(config, generator=generator), args.bootstrap,
                       args.database_url, log_dir)
    results = Results()
    try:
        stack.start()
        if args.mode == "soak":
            _phase(results, "soak", lambda: soak.run(stack, config, results))
        else:
            _run_phases(stack, dataclasses.replace(config, generator=generator), results)
    finally:
        stack.stop()
    finished = datetime.now(UTC)
    data = {
        "kind": "soak" if args.mode == "soak" else "bench", "run_id": stack.run_id,
        "started_at": started.isoformat(), "finished_at": finished.isoformat(),
        "duration_s": (finished - started).total_seconds(), "quick": config.quick,
        "generator": generator_text, "log_dir": str(log_dir),
        "config": {k: (str(v) if isinstance(v, Path) else v)
                   for k, v in dataclasses.asdict(config).items()},
        "machine": machine_info(stack.postgres_version, stack.broker_description),
        "figures": results.figures_as_dicts(),
        "checks": report.checks(results, config),
        "memory": stack.memory, "details": results.details, "errors": results.errors,
    }
    path = report.write_json(data, config.results_dir)
    print(report.markdown(data, results, path), flush=True)
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
