"""The stager's small HTTP side: /metrics, /healthz and /readyz for operators."""

from collections.abc import Generator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from stageline_shared import probes
from stageline_shared.errors import install_error_handlers
from stageline_shared.http_metrics import instrument
from stageline_shared.urls import URL_ERRORS, Utf8Urls
from stageline_stager.settings import StagerSettings


def make_app(settings: StagerSettings, db: AsyncEngine) -> FastAPI:
    app = FastAPI(title="Stageline stager", docs_url=None, redoc_url=None, responses=URL_ERRORS)
    app.state.settings = settings
    app.state.db = db
    install_error_handlers(app)  # its 404s and 405s are JSON with a code, as the other services'
    app.add_middleware(Utf8Urls)
    instrument(app, "stager")
    app.include_router(probes.router)
    return app


class EmbeddedServer(uvicorn.Server):
    """Uvicorn inside the stager's own event loop; the stager owns the signals."""

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield
