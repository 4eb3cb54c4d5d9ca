"""The live stack shared by the pipeline, e2e and soak phases: ingest, stager and API together."""

from dataclasses import dataclass

from stageline_bench.stack import BenchStack, Service, plain_url


@dataclass
class Live:
    phase: str
    tag: str  # prefix of this stack's event and customer ids
    database: str  # plain postgresql:// URL, for asyncpg
    topic: str
    ingest: Service
    stager: Service
    api: Service
    write_key: str
    read_key: str

    @property
    def services(self) -> list[Service]:
        return [self.ingest, self.stager, self.api]


def start_live(stack: BenchStack, phase: str = "live") -> Live:
    url, topic = stack.database(phase), stack.topic(phase)
    ingest = stack.start_service("ingest", phase, url, topic)
    stager = stack.start_service("stager", phase, url, topic)
    api = stack.start_service("api", phase, url, topic)
    keys = stack.keys[url]
    return Live(phase, f"{phase[0]}{stack.run_id}", plain_url(url), topic, ingest, stager, api,
                keys["write"], keys["read"])
