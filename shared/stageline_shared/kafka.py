"""Broker helpers the services share: producers built one way, topics created, the cluster's id."""

import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)


def make_producer(bootstrap_servers: str, client_id: str, **options: Any) -> AIOKafkaProducer:
    """A producer for records Stageline has promised to keep: a send completes only once every
    in-sync replica holds the record (acks=all). `options` are AIOKafkaProducer's own, for what
    a caller tunes (batching, compression, timeouts)."""
    return AIOKafkaProducer(bootstrap_servers=bootstrap_servers, client_id=client_id, acks="all",
                            **options)


async def ensure_topics(bootstrap_servers: str, topics: dict[str, int]) -> str:
    """Create missing topics (name → partitions) and return the broker's cluster id."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="stageline-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=partitions, replication_factor=1)
            for name, partitions in topics.items()
            if name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
                log.info("created topics %s", ", ".join(t.name for t in missing))
            except TopicAlreadyExistsError:
                log.info("topics were created concurrently by another process")
        cluster = await admin.describe_cluster()
        return str(cluster["cluster_id"])
    finally:
        await admin.close()
