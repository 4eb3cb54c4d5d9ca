"""`stageline-stager`: run one stager process (join the consumer group, serve /metrics)."""

import asyncio
import logging
import signal
import sys

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from stageline_shared.database import make_engine
from stageline_shared.gc_tuning import tune_gc
from stageline_shared.journeys import JourneyDefinitionError, load_journeys
from stageline_shared.kafka import ensure_topics
from stageline_shared.logs import setup_logging
from stageline_shared.ops_http import embedded_server, new_event_loop, ops_app
from stageline_stager.consumer import StagerLoop
from stageline_stager.engine import JourneyEngine
from stageline_stager.settings import StagerSettings

log = logging.getLogger("stageline_stager")


async def _log_commit_mode(db: AsyncEngine) -> None:
    """Say how batch transactions commit, as a session of the batches' engine reports it."""
    try:
        async with asyncio.timeout(5), db.connect() as conn:
            mode = (await conn.execute(text("SHOW synchronous_commit"))).scalar()
    except Exception as exc:  # noqa: BLE001 - only a log line; the loop retries Postgres itself
        log.warning("Postgres not reachable at start (%r); the stager waits for it", exc)
        return
    log.info("batch transactions commit with synchronous_commit=%s", mode)


async def serve(settings: StagerSettings) -> None:
    journeys = load_journeys(settings.journeys_file)
    log.info("journeys loaded from %s: %s", settings.journeys_file, ", ".join(journeys))
    cluster_id = await ensure_topics(
        settings.kafka_bootstrap_servers,
        {settings.topic: settings.topic_partitions, settings.dlq_topic: 1},
    )
    db = make_engine(settings.database_url, application_name="stageline-stager",
                     server_settings={"synchronous_commit": settings.synchronous_commit})
    await _log_commit_mode(db)
    loop = StagerLoop(settings, db, [JourneyEngine(j) for j in journeys.values()], cluster_id)
    server = embedded_server(ops_app("stager", settings, db), settings.stager_host,
                             settings.stager_port)
    running = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        running.add_signal_handler(sig, loop.stop)
    http_task = asyncio.create_task(server.serve())
    tune_gc()
    try:
        await loop.run()
    finally:
        server.should_exit = True
        await http_task
        await db.dispose()


def main() -> None:
    settings = StagerSettings()
    setup_logging(settings.log_level, "stager")
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(serve(settings))
    except JourneyDefinitionError as exc:
        log.error("invalid journey definition: %s", exc)
        sys.exit(2)
    log.info("stager exited cleanly")


if __name__ == "__main__":
    main()
