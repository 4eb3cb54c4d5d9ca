"""HTTP request metrics for the FastAPI services, labelled by route template, never raw path.

Every scrape also checks what /readyz checks (broker and database reachable) and reports it as
stageline_dependency_up, so an outage shows on a graph, and alerts, with no traffic and no prober.

A service run as several worker processes (ingest) sets PROMETHEUS_MULTIPROC_DIR before
prometheus_client is first imported; every worker then writes its samples there and /metrics
answers with the sum over all workers, whichever worker serves it.
"""

import functools
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stageline_shared.health import readiness

REQUEST_SECONDS = Histogram(
    "stageline_http_request_duration_seconds",
    "HTTP request latency by service, route template, method and status.",
    ["service", "route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# Set by whichever worker answers the scrape, just before it collects: the most recent value is
# the one measured for this scrape ("live": a worker that exited leaves none behind).
DEPENDENCY_UP = Gauge(
    "stageline_dependency_up",
    "1 if the dependency (broker, database) was reachable when /metrics was scraped, else 0.",
    ["dependency"],
    multiprocess_mode="livemostrecent",
)


class _Timed:
    """Pure ASGI middleware (BaseHTTPMiddleware costs a task and a stream per request)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The router records the matched route in the scope: its template is the label.
            route = str(getattr(scope.get("route"), "path", "unmatched"))
            REQUEST_SECONDS.labels(self.service, route, scope["method"], str(status)).observe(
                time.perf_counter() - start
            )


_WORKER_FILE = re.compile(r"_(\d+)\.db$")  # counter_1234.db, gauge_livesum_1234.db, …


class WorkerProcesses(Collector):
    """process_* metrics (CPU, memory, open files, start time) of every live worker writing to
    the multiprocess directory, labelled by pid: prometheus_client's multiprocess mode has none."""

    def __init__(self, directory: str) -> None:
        self._directory = Path(directory)

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for pid in sorted(self._pids()):
            # A worker that just exited yields nothing: the collector skips an unreadable /proc.
            for family in ProcessCollector(pid=functools.partial(str, pid), registry=None).collect():
                merged = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                for sample in family.samples:
                    merged.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        yield from families.values()

    def _pids(self) -> set[int]:
        pids = {int(m.group(1)) for path in self._directory.glob("*.db")
                if (m := _WORKER_FILE.search(path.name))}
        return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


def exposition() -> bytes:
    """The metrics in Prometheus text format: this process's, or all workers' summed (and each
    live worker's process_* metrics, by pid)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return generate_latest()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, directory)
    registry.register(WorkerProcesses(directory))
    return generate_latest(registry)


async def check_dependencies(app: FastAPI) -> None:
    """Record whether the broker and the database answer, as /readyz would (bounded by its
    timeout, well under Prometheus's scrape timeout)."""
    _, checks = await readiness(app.state.settings.kafka_bootstrap_servers, app.state.db)
    for dependency, reachable in checks.items():
        DEPENDENCY_UP.labels(dependency).set(1 if reachable else 0)


def instrument(app: FastAPI, service: str) -> None:
    """Time every request and serve /metrics (with the dependencies checked at each scrape)."""
    app.add_middleware(_Timed, service=service)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        await check_dependencies(request.app)
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
