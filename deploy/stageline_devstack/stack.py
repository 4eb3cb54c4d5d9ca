"""`make run`: the whole system on this machine, stopped cleanly by Ctrl-C, SIGTERM or SIGHUP, or
when the process that started it (make, a shell) goes away."""

import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from stageline_devstack.broker import Broker
from stageline_devstack.databases import ensure_database
from stageline_devstack.dev_keys import fresh_dev_keys
from stageline_devstack.postgres import EmbeddedPostgres
from stageline_devstack.processes import ServiceProcess
from stageline_shared.migrate import upgrade

log = logging.getLogger("stageline_devstack")


class DevSettings(BaseSettings):
    """Where the local stack listens and keeps its data (see the README table)."""

    model_config = SettingsConfigDict(env_prefix="STAGELINE_", frozen=True, extra="ignore")

    kafka_bootstrap_servers: str | None = Field(default=None, alias="KAFKA_BOOTSTRAP_SERVERS")
    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    broker_port: int = 9092
    api_port: int = 8000
    ingest_port: int = 8001
    stager_port: int = 8002
    dispatcher_port: int = 8003
    data_dir: Path = Path(".stageline")


SAMPLE = """
Stageline is running.
  API      http://127.0.0.1:{api}  (docs: http://127.0.0.1:{api}/docs)
  ingest   http://127.0.0.1:{ingest}/v1/events
  metrics  http://127.0.0.1:{ingest}/metrics  http://127.0.0.1:{stager}/metrics  http://127.0.0.1:{dispatcher}/metrics
           http://127.0.0.1:{api}/metrics
  broker   {bootstrap}
  database {database}
  logs     {logs}

Development keys (new each start; the previous run's are revoked; shown only here):
  write    {write}  (ingest, source "dev")
  read     {read}  (API)
  admin    {admin}  (API, /v1/admin/keys and /v1/admin/webhooks)

Try:
  curl -s -X POST http://127.0.0.1:{ingest}/v1/events -u {write}: \\
       -H 'Content-Type: application/json' \\
       -d '{{"customer_id": "c-1", "event": "Product Viewed", "channel": "web"}}'
  curl -s http://127.0.0.1:{api}/v1/journeys/ecommerce/stages -H "Authorization: Bearer {read}"
  curl -s http://127.0.0.1:{api}/v1/customers/c-1/timeline -H "Authorization: Bearer {read}"
  curl -s http://127.0.0.1:{api}/v1/journeys/ecommerce/stages/interest/customers \\
       -H "Authorization: Bearer {read}"
  curl -s http://127.0.0.1:{api}/v1/changes -H "Authorization: Bearer {read}"
  curl -s http://127.0.0.1:{api}/v1/admin/keys -H "Authorization: Bearer {admin}"

Ctrl-C stops everything.
"""


def run() -> None:
    settings = DevSettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logs = settings.data_dir / "logs"
    logs.mkdir(exist_ok=True)
    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)
    parent = os.getppid()

    broker: Broker | None = None
    postgres: EmbeddedPostgres | None = None
    services: list[ServiceProcess] = []
    try:
        bootstrap = settings.kafka_bootstrap_servers
        if bootstrap is None:
            broker = Broker(settings.broker_port, logs / "broker.log").start()
            bootstrap = broker.bootstrap_servers
        database_url = settings.database_url
        if database_url is None:
            postgres = EmbeddedPostgres(settings.data_dir / "pgdata").start()
            database_url = ensure_database(postgres.url(), "stageline")
        upgrade(database_url)
        log.info("database migrated")
        keys = fresh_dev_keys(database_url)
        log.info("development keys replaced")
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DATABASE_URL": database_url,
            "STAGELINE_API_PORT": str(settings.api_port),
            "STAGELINE_INGEST_PORT": str(settings.ingest_port),
            "STAGELINE_STAGER_PORT": str(settings.stager_port),
            "STAGELINE_DISPATCHER_PORT": str(settings.dispatcher_port),
            # Webhooks to a receiver on this machine (refused by default in production).
            "STAGELINE_WEBHOOK_ALLOW": os.environ.get("STAGELINE_WEBHOOK_ALLOW", "loopback"),
            "PYTHONUNBUFFERED": "1",
        }
        for name, module, port in (
            ("ingest", "stageline_ingest", settings.ingest_port),
            ("stager", "stageline_stager", settings.stager_port),
            ("dispatcher", "stageline_dispatcher", settings.dispatcher_port),
            ("api", "stageline_api", settings.api_port),
        ):
            service = ServiceProcess(
                name, module, env, f"http://127.0.0.1:{port}/healthz", logs / f"{name}.log"
            )
            services.append(service)
            service.start()
        print(SAMPLE.format(
            api=settings.api_port, ingest=settings.ingest_port, stager=settings.stager_port,
            dispatcher=settings.dispatcher_port,
            bootstrap=bootstrap, database=database_url, logs=logs.resolve(), **keys,
        ), flush=True)
        while not stopping.wait(1):
            if os.getppid() != parent:
                # make or the shell was killed: nobody is left to press Ctrl-C.
                log.warning("the process that started the stack (pid %d) is gone; stopping", parent)
                break
            for service in services:
                if not service.running:
                    log.error("%s exited (see %s); stopping", service.name, service.log_file)
                    stopping.set()
    finally:
        log.info("stopping")
        for service in reversed(services):
            code = service.stop()
            log.info("%s stopped (exit code %s)", service.name, code)
        if broker:
            broker.stop()
        if postgres:
            postgres.stop()
        log.info("all stopped")
    os._exit(0)
