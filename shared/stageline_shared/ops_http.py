"""The small HTTP side of the services without an API of their own (stager, dispatcher):
/metrics, /healthz and /readyz for operators, served by uvicorn inside the service's event loop."""

import asyncio
from collections.abc import Generator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from stageline_shared import probes
from stageline_shared.errors import install_error_handlers
from stageline_shared.http_metrics import instrument
from stageline_shared.settings import CommonSettings
from stageline_shared.urls import URL_ERRORS, Utf8Urls


def ops_app(service: str, settings: CommonSettings, db: AsyncEngine) -> FastAPI:
    app = FastAPI(title=f"Stageline {service}", docs_url=None, redoc_url=None, responses=URL_ERRORS)
    app.state.settings = settings
    app.state.db = db
    install_error_handlers(app)  # its 404s and 405s are JSON with a code, as the other services'
    app.add_middleware(Utf8Urls)
    instrument(app, service)
    app.include_router(probes.router)
    return app


class EmbeddedServer(uvicorn.Server):
    """Uvicorn inside the service's own event loop; the service owns the signals."""

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def embedded_server(app: FastAPI, host: str, port: int) -> EmbeddedServer:
    return EmbeddedServer(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                         lifespan="off"))


def new_event_loop() -> asyncio.AbstractEventLoop:
    """libuv's event loop (uvloop) where installed: asyncio's own selector loop spends much more
    CPU in socket reads and writes."""
    try:
        import uvloop
    except ImportError:  # not built for Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
