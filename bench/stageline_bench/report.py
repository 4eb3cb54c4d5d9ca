"""The run's report: the issue's targets checked (never asserted), a Markdown table, a JSON file."""

import json
import os
from pathlib import Path
from typing import Any

from stageline_bench import report_actions
from stageline_bench.config import BenchConfig, customers_label
from stageline_bench.results import Results
from stageline_bench.target import Target, figure, ratio


def targets(config: BenchConfig) -> list[Target]:
    """Each throughput target is a ratio to a reference measured in the same run, so that a run
    on a slower or faster machine is held to the same bar."""
    share = config.pipeline_share
    result = [
        # Ingest's floor is the same service forwarding each event unchecked (ingest_floor.py).
        Target(f"ingest.c{c}/floor", "≥ 95% of its floor",
               ratio(f"ingest.c{c}.events_per_s", f"ingest_floor.c{c}.events_per_s"),
               lambda v: v >= 0.95, ratio=True)
        for c in config.concurrencies
    ]
    result += [
        Target(f"stager.{customers_label(n)}/raw.postgres", "≥ 85% of raw Postgres",
               ratio(f"stager.{customers_label(n)}.events_per_s", "raw.postgres.rows_per_s"),
               lambda v: v >= 0.85, ratio=True)
        for n in config.stager_customers
    ]
    result += [
        # Held open loop at a share of raw Postgres: the rate kept (1% for the sender's clock),
        # and no growing lag, i.e. never a second of events behind.
        Target("pipeline.steady/raw.postgres", f"held at {share:.0%} of raw Postgres",
               ratio("pipeline.steady.events_per_s", "raw.postgres.rows_per_s"),
               lambda v: v >= 0.99 * share, ratio=True),
        Target("pipeline.steady.lag", "lag < 1 s of events (not growing)",
               figure("pipeline.steady.max_lag_s"), lambda v: v < 1, ratio=False),
        Target("e2e.counts", "p99 < 250 ms", figure("e2e.counts.p99_ms"), lambda v: v < 250, ratio=False),
        Target("e2e.timeline", "p99 < 250 ms", figure("e2e.timeline.p99_ms"), lambda v: v < 250,
               ratio=False),
        Target("api.counts", "p99 < 5 ms", figure("api.counts.p99_ms"), lambda v: v < 5, ratio=False),
        Target("api.timeline", "p99 < 20 ms", figure("api.timeline.p99_ms"), lambda v: v < 20,
               ratio=False),
        Target("soak.drain", "lag back to 0 within 5 s", figure("soak.drain_s"), lambda v: v <= 5,
               ratio=False),
    ]
    result += [
        Target(f"soak.rss.{kind}", "RSS drift < 10%", figure(f"soak.rss_drift_pct.{kind}"),
               lambda v: v < 10, ratio=False)
        for kind in ("ingest", "stager", "api")
    ]
    return result + report_actions.targets()


def checks(results: Results, config: BenchConfig) -> list[dict[str, Any]]:
    out = []
    for target in targets(config):
        value = target.value(results)
        if value is not None:
            out.append({"id": target.id, "target": target.text, "value": value,
                        "is_ratio": target.ratio, "met": target.met(value)})
    return out


def _n(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"
    return f"{text} {unit}".strip()


def _latency(results: Results, prefix: str) -> str:
    parts = [f"{p} {_n(results.value(f'{prefix}.{p}_ms'), 'ms')}" for p in ("p50", "p99", "max")
             if results.value(f"{prefix}.{p}_ms") is not None]
    rps = results.value(f"{prefix}.requests_per_s")
    return ", ".join(parts) + (f" ({_n(rps)} req/s)" if rps else "")


def _cpu(details: dict[str, Any]) -> str:
    """"; machine busy 1.98 cores, CPU per event: stager 70 µs, rest 40 µs", or nothing."""
    cpu = details.get("cpu")
    if not cpu:
        return ""
    parts = [f"{k.removeprefix('cpu_us_per_event_')} {v:,.0f} µs" for k, v in cpu.items()
             if k.startswith("cpu_us_per_event_")]
    return f"; machine busy {cpu['machine_busy_cores']:.2f} cores, CPU per event: {', '.join(parts)}"


def _steady_cpu(report: dict[str, Any]) -> str:
    """" (machine busy 1.41 cores, …)" of the steady pipeline, or nothing."""
    cpu = _cpu(report["details"].get("pipeline_steady", {}))
    return f" ({cpu.removeprefix('; ')})" if cpu else ""


def _steady_lag(results: Results) -> str:
    """"1,234 events = 0.04 s of load; 0.31 s" (largest lag; drain time), or "—"."""
    v = results.value
    if v("pipeline.steady.max_lag_s") is None:
        return "—"
    events = int(v("pipeline.steady.max_lag_events") or 0)
    return (f"{events:,} events = {_n(v('pipeline.steady.max_lag_s'), 's')} of load; "
            f"{_n(v('pipeline.steady.drain_s'), 's')}")


# (what, figure at the start, the same figure at the end, unit): raw.recheck's figures.
_RECHECKED = (
    ("Raw producer", "raw.producer.events_per_s", "raw.producer.end.events_per_s", "events/s"),
    ("Raw Postgres", "raw.postgres.rows_per_s", "raw.postgres.end.rows_per_s", "rows/s"),
)


def _rows(report: dict[str, Any], results: Results) -> list[tuple[str, str, str]]:
    """(measurement, result, check id or reference) per line of the table."""
    config = report["config"]
    v = results.value
    compression = report["details"].get("raw", {}).get("compression", "none")
    plain = v("raw.producer.uncompressed.events_per_s")
    rows = [
        ("Raw producer: aiokafka create_batch/send_batch, ~200 B keyed values, acks=all, "
         f"compression {compression} (as ingest)", _n(v("raw.producer.events_per_s"), "events/s"),
         "reference"),
        ("Raw producer, uncompressed (the same records, for comparison)", _n(plain, "events/s"),
         "reference"),
        (f"Raw Postgres: asyncpg COPY → temp table + INSERT … ON CONFLICT + stage upsert, "
         f"{config['raw_rows_per_txn']:,} rows/txn", _n(v("raw.postgres.rows_per_s"), "rows/s"), "reference"),
    ]
    for what, start_id, end_id, unit in _RECHECKED:
        start, end = v(start_id), v(end_id)
        if start and end:
            rows.append((f"{what} again, after every other phase (the machine's drift)",
                         f"{_n(end, unit)} ({end / start - 1:+.1%} from the start)", "reference"))
    by_connections = report["details"].get("ingest", {}).get("by_connections", {})
    for c in config["concurrencies"]:
        cpu = by_connections.get(str(c))
        cpu_text = (f"; CPU cores: ingest {cpu['ingest_cpu_cores']:.2f}, {cpu['generator']} "
                    f"{cpu['generator_cpu_cores']:.2f}") if cpu else ""
        rate, floor = v(f"ingest.c{c}.events_per_s"), v(f"ingest_floor.c{c}.events_per_s")
        plain_text = f"; {rate / plain:.1%} of the uncompressed raw" if rate and plain else ""
        floor_text = f"; {rate / floor:.1%} of its floor" if rate and floor else ""
        rows.append((f"Ingest over HTTP, {c} connections, batches of {config['batch']} (2xx after acks)",
                     f"{_n(rate, 'events/s')} "
                     f"(p50 {_n(v(f'ingest.c{c}.p50_ms'), 'ms')}, p99 {_n(v(f'ingest.c{c}.p99_ms'), 'ms')}"
                     f"{cpu_text}{plain_text}{floor_text})", f"ingest.c{c}/floor"))
    for c, cpu in report["details"].get("ingest", {}).get("without_ids", {}).items():
        rate, raw = v(f"ingest.c{c}_without_ids.events_per_s"), v("raw.producer.events_per_s")
        share = f"{rate / raw:.1%} of raw send_batch; " if rate and raw else ""
        rows.append((f"Ingest over HTTP, {c} connections, events sent without ids (ingest assigns them)",
                     f"{_n(rate, 'events/s')} ({share}p50 {_n(v(f'ingest.c{c}_without_ids.p50_ms'), 'ms')}, "
                     f"p99 {_n(v(f'ingest.c{c}_without_ids.p99_ms'), 'ms')}; CPU cores: ingest "
                     f"{cpu['ingest_cpu_cores']:.2f}, {cpu['generator']} {cpu['generator_cpu_cores']:.2f})",
                     "—"))
    for c, cpu in report["details"].get("ingest", {}).get("floor", {}).items():
        rate, raw = v(f"ingest_floor.c{c}.events_per_s"), v("raw.producer.events_per_s")
        share = f"{rate / raw:.1%} of raw send_batch; " if rate and raw else ""
        rows.append((f"Ingest's floor, {c} connections: the same service forwarding each event "
                     "unchecked (no ingest that checks events can pass it)",
                     f"{_n(rate, 'events/s')} ({share}p99 {_n(v(f'ingest_floor.c{c}.p99_ms'), 'ms')}; "
                     f"CPU cores: ingest {cpu['ingest_cpu_cores']:.2f}, {cpu['generator']} "
                     f"{cpu['generator_cpu_cores']:.2f})", "reference"))
    rows += _stager_rows(report, results)
    pipeline = report["details"].get("pipeline", {})
    closed, raw_postgres = v("pipeline.events_per_s"), v("raw.postgres.rows_per_s")
    closed_notes = [f"{closed / raw_postgres:.1%} of raw Postgres"] if closed and raw_postgres else []
    if pipeline.get("cpu"):
        closed_notes.append(_cpu(pipeline).removeprefix("; "))
    closed_text = _n(closed, "events/s") + (f" ({'; '.join(closed_notes)})" if closed_notes else "")
    held = report["details"].get("pipeline_steady", {})
    held_share = f" = {held['share_of_raw_postgres']:.0%} of raw Postgres" \
        if held.get("share_of_raw_postgres") else ""
    rows += [
        (f"Whole pipeline, closed loop: ingest + stager, {max(config['concurrencies'])} connections "
         "(an upper bound: the stagers fall behind, then drain)",
         closed_text, "—"),
        (f"Whole pipeline held at {_n(held.get('rate_asked'))} events/s{held_share} for "
         f"{config['pipeline_seconds']:g} s (open loop, stager running): load kept",
         _n(v("pipeline.steady.events_per_s"), "events/s") + _steady_cpu(report),
         "pipeline.steady/raw.postgres"),
        ("Whole pipeline held: largest lag (acknowledged, not yet applied); back to 0 after the load",
         _steady_lag(results), "pipeline.steady.lag"),
        (f"End to end at {config['rate']:,} events/s for {config['seconds']:g} s: 2xx → in stage counts",
         _latency(results, "e2e.counts"), "e2e.counts"),
        ("End to end: 2xx → in the customer's timeline", _latency(results, "e2e.timeline"), "e2e.timeline"),
        (f"API stage counts, {config['api_customers']:,} customers", _latency(results, "api.counts"),
         "api.counts"),
        (f"API timeline page of 100 items, {config['touchpoints']:,} touchpoints",
         _latency(results, "api.timeline"), "api.timeline"),
        (f"Soak at {config['rate']:,} events/s for {config['seconds']:g} s: load achieved",
         _n(v("soak.events_per_s"), "events/s"), "—"),
        ("Soak: largest consumer lag (acknowledged, not yet applied)",
         _n(v("soak.max_lag_events"), "events"), "—"),
        ("Soak: lag back to 0 after the load stopped", _n(v("soak.drain_s"), "s"), "soak.drain"),
    ]
    rows += report_actions.rows(report, results, _n, _latency)
    for kind in ("ingest", "stager", "api"):
        rows.append((f"Soak: {kind} RSS drift (end vs after warm-up)",
                     _n(v(f"soak.rss_drift_pct.{kind}"), "%"), f"soak.rss.{kind}"))
    rows += [("Soak: 2xx → in stage counts", _latency(results, "soak.e2e.counts"), "—"),
             ("Soak: 2xx → in timeline", _latency(results, "soak.e2e.timeline"), "—")]
    return [row for row in rows if row[1] and not row[1].startswith("—")]


def _stager_rows(report: dict[str, Any], results: Results) -> list[tuple[str, str, str]]:
    """A row per stager run (one per customer count), then how the cost per event grew."""
    stager = report["details"].get("stager", {})
    runs = stager.get("by_customers", {})
    rows = []
    for label, run in runs.items():
        cpu = (f" ({stager['stagers']} stager processes, {run['stager_cpu_cores']:.2f} CPU cores"
               f"{_cpu(run)})")
        rows.append((f"Stager: {stager['events']:,} preloaded events over {run['customers']:,} customers",
                     _n(results.value(f"stager.{label}.events_per_s"), "events/s") + cpu,
                     f"stager.{label}/raw.postgres"))
    if len(runs) > 1 and "growth" in stager:
        small, large = min(runs.values(), key=lambda r: r["customers"]), \
            max(runs.values(), key=lambda r: r["customers"])
        parts = []
        for key in ("cpu_us_per_event_total", "cpu_us_per_event_postgres", "cpu_us_per_event_stager"):
            if key in small["cpu"] and key in large["cpu"]:
                name = {"cpu_us_per_event_total": "machine"}.get(key, key.removeprefix("cpu_us_per_event_"))
                parts.append(f"{name} {small['cpu'][key]:.0f} → {large['cpu'][key]:.0f} µs "
                             f"({large['cpu'][key] / small['cpu'][key] - 1:+.0%})")
        rows.append((f"Stager: cost per event from {small['customers']:,} to {large['customers']:,} "
                     "customers", f"CPU per event: {', '.join(parts)}; events/s "
                     f"{stager['growth']['events_per_s'] - 1:+.0%}", "—"))
    return rows


def markdown(report: dict[str, Any], results: Results, json_path: Path) -> str:
    by_id = {check["id"]: check for check in report["checks"]}
    lines = [
        f"## Stageline {report['kind']} {report['run_id']} — {report['started_at'][:19]}Z",
        "",
        "| measurement | result | target | ratio | target met |",
        "|---|---|---|---|---|",
    ]
    for label, value, check_id in _rows(report, results):
        check = by_id.get(check_id)
        if check is None:
            lines.append(f"| {label} | {value} | {check_id if check_id == 'reference' else '—'} | — | — |")
            continue
        ratio = f"{check['value']:.1%}" if check["is_ratio"] else "—"
        lines.append(f"| {label} | {value} | {check['target']} | {ratio} | "
                     f"{'yes' if check['met'] else 'no'} |")
    if report["memory"]:
        lines += ["", "| service RSS | phase | before | after |", "|---|---|---|---|"]
        lines += [f"| {m['service']} | {m['phase']} | {m['rss_before_mb']:.0f} MB "
                  f"| {m['rss_after_mb']:.0f} MB |" for m in report["memory"]]
    machine = report["machine"]
    lines += [
        "",
        f"Closed-loop load (ingest, pipeline, API), in its own process: {report['generator']}. "
        "Fixed-rate load (e2e, soak): an open-loop asyncio sender in the bench process, one probe "
        f"per request. Machine: {machine['nproc']} CPUs ({machine['cpu']}), "
        f"{machine['memory_mb'] / 1024:.0f} GiB; Python {machine['python']}, aiokafka {machine['aiokafka']}, "
        f"asyncpg {machine['asyncpg']}, PostgreSQL {machine['postgres']}; broker: {machine['broker']}. "
        "Everything (broker, Postgres, services, load generator) shares these CPUs.",
    ]
    if report["quick"]:
        lines.append("**--quick run: sizes are tiny; the numbers only show that every stage works.**")
    for phase, error in report["errors"].items():
        lines.append(f"**Phase {phase} failed:** {error}")
    lines.append(f"JSON: {json_path}")
    return "\n".join(lines)


def write_json(report: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = report["started_at"][:19].replace(":", "").replace("-", "")
    path = directory / f"{report['kind']}-{stamp}-{report['run_id']}.json"
    scratch = path.with_suffix(".json.tmp")
    scratch.write_text(json.dumps(report, indent=2, default=str) + "\n")
    os.replace(scratch, path)
    return path
