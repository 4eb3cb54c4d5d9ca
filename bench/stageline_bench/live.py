"""The live stack shared by the pipeline, e2e, webhooks and soak phases: ingest, stagers, the
dispatcher (relaying the change feed) and the API together."""

from dataclasses import dataclass

from stageline_bench.config import BenchConfig
from stageline_bench.stack import BenchStack, Service, plain_url


@dataclass
class Live:
    phase: str
    tag: str  # prefix of this stack's event and customer ids
    database: str  # plain postgresql:// URL, for asyncpg
    topic: str
    ingest: Service
    stagers: list[Service]  # one consumer group
    dispatcher: Service
    api: Service
    write_key: str
    read_key: str
    admin_key: str

    @property
    def services(self) -> list[Service]:
        return [self.ingest, *self.stagers, self.dispatcher, self.api]


def start_stagers(stack: BenchStack, config: BenchConfig, phase: str, url: str, topic: str) -> list[Service]:
    """config.stagers stager processes sharing one consumer group (phases phase, phase.2, …)."""
    return [stack.start_service("stager", phase if n == 1 else f"{phase}.{n}", url, topic)
            for n in range(1, config.stagers + 1)]


def stop_live(stack: BenchStack, config: BenchConfig, phase: str) -> None:
    """Stop what start_live or start_stagers started for the phase (what did start, if it failed)."""
    for n in range(config.stagers, 0, -1):
        stack.stop_services(phase if n == 1 else f"{phase}.{n}")


def start_live(stack: BenchStack, config: BenchConfig, phase: str = "live") -> Live:
    url, topic = stack.database(phase), stack.topic(phase)
    ingest = stack.start_service("ingest", phase, url, topic)
    stagers = start_stagers(stack, config, phase, url, topic)
    dispatcher = stack.start_service("dispatcher", phase, url, topic)
    api = stack.start_service("api", phase, url, topic)
    keys = stack.keys[url]
    return Live(phase, f"{phase[0]}{stack.run_id}", plain_url(url), topic, ingest, stagers, dispatcher,
                api, keys["write"], keys["read"], keys["admin"])
