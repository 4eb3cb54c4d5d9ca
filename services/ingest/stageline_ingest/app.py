"""The ingest FastAPI application: producer made in lifespan, closed after."""

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka.errors import KafkaError
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import multiprocess

from stageline_ingest.native.dispatch import EventsDispatch, events_route
from stageline_ingest.native.intake import ReadEvents, read_events
from stageline_ingest.native.routes import router
from stageline_ingest.producer import TouchpointProducer
from stageline_ingest.segment.routes import router as segment_router
from stageline_ingest.settings import IngestSettings
from stageline_shared import probes
from stageline_shared.auth import RateLimiter
from stageline_shared.database import make_engine
from stageline_shared.errors import install_error_handlers
from stageline_shared.gc_tuning import tune_gc
from stageline_shared.http_metrics import instrument
from stageline_shared.kafka import ensure_topics
from stageline_shared.keys import KeyStore
from stageline_shared.logs import setup_logging
from stageline_shared.urls import URL_ERRORS, Utf8Urls

log = logging.getLogger("stageline_ingest")

# The request headers browser SDKs send: a preflight naming any other is refused (400), and the
# browser then drops the request. Besides the write key (Basic auth) and the body's type and
# encoding: analytics.js (@segment/analytics-next) sends X-Retry-Count on every retry;
# RudderStack's JavaScript SDK sends AnonymousId and SentAt on every request, Rsa-Recovered on
# events left in storage by an earlier page, and the Rsa-Retry-* / Rsa-Since-* four on retries.
# Retry-After is exposed so that a browser SDK can honour it (analytics.js waits as long on a 429).
CORS_ALLOWED_HEADERS = [
    "Authorization", "Content-Type", "Content-Encoding",
    "X-Retry-Count",
    "AnonymousId", "SentAt", "Rsa-Recovered", "Rsa-Retry-Attempt", "Rsa-Retry-Reason",
    "Rsa-Since-First-Attempt", "Rsa-Since-Last-Attempt",
]

async def _wait_for_broker(settings: IngestSettings) -> None:
    """Create the topic, retrying while the broker comes up (bounded by startup_timeout_s)."""
    async with asyncio.timeout(settings.startup_timeout_s):
        while True:
            try:
                await ensure_topics(
                    settings.kafka_bootstrap_servers, {settings.topic: settings.topic_partitions}
                )
                return
            except (KafkaError, OSError) as exc:
                log.warning("broker %s not ready (%r); retrying", settings.kafka_bootstrap_servers, exc)
                await asyncio.sleep(1)


def create_worker_app(read_events: ReadEvents = read_events) -> FastAPI:
    """The app of one of several uvicorn workers: settings and logging from the environment."""
    settings = IngestSettings()
    setup_logging(settings.log_level, f"ingest[{os.getpid()}]")
    app = create_app(settings, read_events)
    tune_gc()
    return app


def create_app(settings: IngestSettings | None = None, read_events: ReadEvents = read_events) -> FastAPI:
    """The ingest app; `read_events` reads POST /v1/events bodies (the bench's floor swaps it)."""
    settings = settings or IngestSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await _wait_for_broker(settings)
        db = make_engine(settings.database_url, application_name="stageline-ingest")
        app.state.db = db
        app.state.keys = KeyStore(db, settings.key_cache_s)
        app.state.rate_limiter = RateLimiter(settings.rate_limit_rps, settings.rate_limit_burst)
        producer = TouchpointProducer(settings)
        await producer.start()
        app.state.producer = producer
        log.info("ingest ready: producing to %s on %s", settings.topic, settings.kafka_bootstrap_servers)
        try:
            yield
        finally:
            await producer.stop()
            await db.dispose()
            log.info("producer stopped")
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                multiprocess.mark_process_dead(os.getpid())  # drops this worker's live gauges

    app = FastAPI(title="Stageline ingest", version="0.1.0", lifespan=lifespan, responses=URL_ERRORS)
    app.state.settings = settings
    app.state.read_events = read_events
    app.state.needs_database = False  # events flow through a database outage (keys are cached)
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(segment_router)
    app.include_router(probes.router)
    # Middlewares added later wrap those added before: CORS, then the request metric, then the
    # URL check (a bytes test on a path without "%"), then the direct dispatch of POST /v1/events.
    app.add_middleware(EventsDispatch, route=events_route(router.routes))
    app.add_middleware(Utf8Urls)
    instrument(app, "ingest")
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["POST", "OPTIONS"],
            allow_headers=CORS_ALLOWED_HEADERS, expose_headers=["Retry-After"], max_age=600,
        )
    return app
