"""The benchmark still runs end to end (`make bench` in `--quick` mode, seconds, on the session's
broker and Postgres). A regression guard for the pipeline, never for speed: no timing is asserted.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stageline_devstack.broker import Broker

pytestmark = pytest.mark.integration

# Every figure a run (not a soak) produces with the default concurrencies.
EXPECTED = {
    "raw.producer.events_per_s", "raw.producer.uncompressed.events_per_s", "raw.postgres.rows_per_s",
    "raw.producer.end.events_per_s", "raw.postgres.end.rows_per_s",
    *(f"ingest.c{c}.{m}" for c in ("8", "64", "64_without_ids") for m in ("events_per_s", "p50_ms", "p99_ms")),
    *(f"ingest_floor.c{c}.{m}" for c in ("8", "64") for m in ("events_per_s", "p50_ms", "p99_ms")),
    # The stager at --quick's two customer counts, and how its cost grew from one to the other.
    "stager.500.events_per_s", "stager.5k.events_per_s", "stager.growth.events_per_s",
    "stager.growth.cpu_us_per_event", "pipeline.events_per_s", "e2e.events_per_s",
    *(f"pipeline.steady.{m}" for m in ("events_per_s", "max_lag_events", "max_lag_s", "drain_s")),
    *(f"e2e.{what}.{m}" for what in ("counts", "timeline") for m in ("p50_ms", "p99_ms", "max_ms")),
    *(f"api.{what}.{m}" for what in ("counts", "timeline", "audience") for m in ("p50_ms", "p99_ms", "requests_per_s")),
    "api.export.rows_per_s", "webhooks.raw_http.requests_per_s", "webhooks.dispatcher.deliveries_per_s",
    "webhooks.e2e.events_per_s", *(f"webhooks.e2e.{m}" for m in ("p50_ms", "p99_ms", "max_ms")),
}


def test_quick_bench_produces_every_figure(broker: Broker, pg_server: str, tmp_path: Path) -> None:
    results = tmp_path / "results"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "DATABASE_URL": pg_server}
    run = subprocess.run(
        [sys.executable, "-m", "stageline_bench", "--quick", "--results-dir", str(results),
         "--log-dir", str(tmp_path / "logs")],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-6000:]}"

    files = list(results.glob("bench-*.json"))
    assert len(files) == 1, files
    report = json.loads(files[0].read_text())
    assert report["errors"] == {}
    figures = {f["id"]: f["value"] for f in report["figures"]}
    assert set(figures) >= EXPECTED, sorted(EXPECTED - set(figures))
    # A stager that keeps up with the quick steady load may show no lag at all.
    may_be_zero = {"pipeline.steady.max_lag_events", "pipeline.steady.max_lag_s", "pipeline.steady.drain_s"}
    assert all(value > 0 or (name in may_be_zero and value == 0) for name, value in figures.items()), figures
    assert all(check["value"] > 0 or (check["id"] == "pipeline.steady.lag" and check["value"] == 0)
               for check in report["checks"])
    assert report["details"]["pipeline_steady"]["events_acked"] > 0
    assert report["machine"]["nproc"] and report["machine"]["postgres"]
    assert {m["service"] for m in report["memory"]} == {"ingest", "stager", "dispatcher", "api"}
    assert all(m["rss_before_mb"] > 0 and m["rss_after_mb"] > 0 for m in report["memory"])
    # The load generator's event ids are unique: every record the pipeline applied was new.
    assert report["details"]["pipeline"]["duplicates"] == 0
    assert report["details"]["api"]["page_items"] == 100
    # The producer's reference compresses as ingest does (zstd by default).
    assert report["details"]["raw"]["compression"] == "zstd"
    # The configured stagers (3) shared the preloaded topic, once per customer count; the CPU
    # accounting covers each measured component.
    stager = report["details"]["stager"]
    assert stager["stagers"] == report["config"]["stagers"] == 3
    assert [run["customers"] for run in stager["by_customers"].values()] == [500, 5_000]
    assert all(run["touchpoints"] == report["config"]["events"] for run in stager["by_customers"].values())
    # Every throughput target is a ratio to a reference measured in the same run.
    assert {"ingest.c8/floor", "ingest.c64/floor", "stager.500/raw.postgres", "stager.5k/raw.postgres",
            "pipeline.steady/raw.postgres"} <= {check["id"] for check in report["checks"]}
    measured = [*(("stager", run["cpu"], {"stager"}) for run in stager["by_customers"].values()),
                ("pipeline", report["details"]["pipeline"]["cpu"], {"ingest", "stager", "api"})]
    for _, cpu, kinds in measured:
        assert 0 < cpu["machine_busy_cores"] <= report["machine"]["nproc"]
        assert {f"cpu_us_per_event_{kind}" for kind in kinds} <= set(cpu)
        assert cpu["cpu_us_per_event_total"] > 0 and cpu["ceiling_events_per_s"] > 0
    # The table went to stdout, the progress lines to stderr.
    assert "| measurement | result |" in run.stdout
    assert "events sent without ids (ingest assigns them)" in run.stdout
    assert "Ingest's floor, 64 connections" in run.stdout and "of its floor" in run.stdout
    assert "Stager: cost per event from 500 to 5,000 customers" in run.stdout
    assert "pipeline:" in run.stderr
