"""HTTP request metrics for the FastAPI services, labelled by route template, never raw path."""

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest

REQUEST_SECONDS = Histogram(
    "stageline_http_request_duration_seconds",
    "HTTP request latency by service, route template, method and status.",
    ["service", "route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def _route_template(request: Request) -> str:
    """The matched route's template (the router records it in the scope), else "unmatched"."""
    return str(getattr(request.scope.get("route"), "path", "unmatched"))


def instrument(app: FastAPI, service: str) -> None:
    """Time every request and serve /metrics."""

    @app.middleware("http")
    async def _timed(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            REQUEST_SECONDS.labels(
                service, _route_template(request), request.method, str(status)
            ).observe(time.perf_counter() - start)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
