"""The read API's FastAPI application: engine and key store made in lifespan, disposed after."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from stageline_api import admin, audiences, changes, privacy, webhooks
from stageline_api.endpoints import router
from stageline_api.privacy import EraseProducer
from stageline_api.settings import ApiSettings
from stageline_shared import probes
from stageline_shared.database import make_engine
from stageline_shared.errors import install_error_handlers
from stageline_shared.http_metrics import instrument
from stageline_shared.journeys import load_journeys
from stageline_shared.keys import KeyStore
from stageline_shared.urls import URL_ERRORS, Utf8Urls

log = logging.getLogger("stageline_api")


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    journeys = load_journeys(settings.journeys_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = make_engine(settings.database_url, pool_size=10, application_name="stageline-api")
        app.state.keys = KeyStore(app.state.db, settings.key_cache_s)
        app.state.producer = EraseProducer(settings.kafka_bootstrap_servers, settings.topic)
        log.info("api ready: journeys %s", ", ".join(journeys))
        try:
            yield
        finally:
            await app.state.producer.stop()
            await app.state.db.dispose()

    app = FastAPI(title="Stageline API", version="0.1.0", lifespan=lifespan, responses=URL_ERRORS,
                  description="Live customer-journey stages for CRM tools.")
    app.state.settings = settings
    app.state.journeys = journeys
    install_error_handlers(app)
    app.add_middleware(Utf8Urls)  # inside the request metric: its refusals are counted too
    instrument(app, "api")
    app.include_router(router)
    app.include_router(audiences.router)
    app.include_router(changes.router)
    app.include_router(admin.router)
    app.include_router(webhooks.router)
    app.include_router(privacy.router)
    app.include_router(probes.router)
    return app
