"""Broker helpers both ingest and stager need: create topics, learn the cluster's identity."""

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)


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
