"""HTTP request metrics for the FastAPI services, labelled by route template, never raw path.

A service run as several worker processes (ingest) sets PROMETHEUS_MULTIPROC_DIR before
prometheus_client is first imported; every worker then writes its samples there and /metrics
answers with the sum over all workers, whichever worker serves it.
"""

import os
import time

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_SECONDS = Histogram(
    "stageline_http_request_duration_seconds",
    "HTTP request latency by service, route template, method and status.",
    ["service", "route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
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


def exposition() -> bytes:
    """The metrics in Prometheus text format: this process's, or all workers' summed."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return generate_latest()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, directory)
    return generate_latest(registry)


def instrument(app: FastAPI, service: str) -> None:
    """Time every request and serve /metrics."""
    app.add_middleware(_Timed, service=service)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
