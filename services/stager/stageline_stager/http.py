"""The stager's small HTTP side: /metrics, /healthz and /readyz for operators."""

from collections.abc import Generator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncEngine

from stageline_shared.errors import json_response
from stageline_shared.health import readiness
from stageline_shared.http_metrics import instrument


def make_app(bootstrap_servers: str, db: AsyncEngine) -> FastAPI:
    app = FastAPI(title="Stageline stager", docs_url=None, redoc_url=None)
    instrument(app, "stager")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz() -> Response:
        ready, checks = await readiness(bootstrap_servers, db)
        return json_response(
            {"ready": ready, "checks": checks}, status=200 if ready else 503
        )

    return app


class EmbeddedServer(uvicorn.Server):
    """Uvicorn inside the stager's own event loop; the stager owns the signals."""

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield
