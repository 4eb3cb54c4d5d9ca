"""`stageline-dispatcher`: relay the change feed, publish it to Kafka, deliver webhooks; /metrics.

Run as many as you like: relays take turns on one row lock, one publishes at a time, and every
webhook delivery is leased by one dispatcher at a time.
"""

import asyncio
import logging
import signal

from stageline_dispatcher.dispatcher import Dispatcher
from stageline_dispatcher.settings import DispatcherSettings
from stageline_shared.database import make_engine
from stageline_shared.kafka import ensure_topics
from stageline_shared.logs import setup_logging
from stageline_shared.ops_http import embedded_server, new_event_loop, ops_app

log = logging.getLogger("stageline_dispatcher")


async def serve(settings: DispatcherSettings) -> None:
    if settings.publish_changes:
        await ensure_topics(settings.kafka_bootstrap_servers,
                            {settings.changes_topic: settings.topic_partitions})
    db = make_engine(settings.database_url, pool_size=4, application_name="stageline-dispatcher")
    dispatcher = Dispatcher(settings, db)
    app = ops_app("dispatcher", settings, db)
    app.state.needs_database = True
    server = embedded_server(app, settings.dispatcher_host, settings.dispatcher_port)
    running = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        running.add_signal_handler(sig, dispatcher.stop)
    http_task = asyncio.create_task(server.serve())
    log.info("dispatcher running: feed relay, %s, webhooks (retries after %s s; allowed private "
             "targets: %s)", f"publishing to {settings.changes_topic}" if settings.publish_changes
             else "not publishing to Kafka", ",".join(f"{s:g}" for s in settings.webhook_retry_schedule_s),
             ",".join(settings.webhook_allow) or "none")
    try:
        await dispatcher.run()
    finally:
        server.should_exit = True
        await http_task
        await db.dispose()


def main() -> None:
    settings = DispatcherSettings()
    setup_logging(settings.log_level, "dispatcher")
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(serve(settings))
    log.info("dispatcher exited cleanly")


if __name__ == "__main__":
    main()
