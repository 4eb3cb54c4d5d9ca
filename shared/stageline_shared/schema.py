"""The database schema (SQLAlchemy Core tables); Alembic migrations create it, services read it."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSON, JSONB

metadata = MetaData()

touchpoints = Table(
    "touchpoints",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("event", Text, nullable=False),
    Column("channel", Text),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("clamped", Boolean, nullable=False, server_default="false"),
    Column("properties", JSONB, nullable=False, server_default="{}"),
    Column("type", Text, nullable=False, server_default="track"),
    Column("anonymous_id", Text),
    Column("user_id", Text),
    Column("context", JSONB, nullable=False, server_default="{}"),
    Column("source", Text),
    Index("touchpoints_customer_time", "customer_id", "occurred_at", "event_id"),
)

# One row per (journey, customer) the customer has a stage in: what the API reads.
customer_stages = Table(
    "customer_stages",
    metadata,
    Column("journey", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("entered_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("journey", "customer_id"),
    # Audiences: who is in a stage, in (entered_at, customer_id) keyset order.
    Index("customer_stages_audience", "journey", "stage", "entered_at", "customer_id"),
)

# The journey engine's state of one customer in every journey (stage, when entered, per rule:
# matches seen and the newest match), so a new touchpoint is applied without re-reading the
# customer's history. json, not jsonb: read and rewritten whole, never queried by its contents.
customer_progress = Table(
    "customer_progress",
    metadata,
    Column("customer_id", Text, primary_key=True),
    Column("state", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

stage_transitions = Table(
    "stage_transitions",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("journey", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("from_stage", Text),
    Column("to_stage", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("stage_transitions_customer_time", "customer_id", "occurred_at", "id"),
)

stage_counts = Table(
    "stage_counts",
    metadata,
    Column("journey", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("customers", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("journey", "stage"),
)

# Kafka offsets live here, written in the same transaction as the effects of the records before
# them. cluster_id tells broker incarnations apart: a memory broker restarted empty must not
# inherit offsets that would skip its new records.
consumer_offsets = Table(
    "consumer_offsets",
    metadata,
    Column("group_id", Text, nullable=False),
    Column("cluster_id", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("next_offset", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("group_id", "cluster_id", "topic", "partition"),
)

# Every id the stager has seen (user ids, anonymous ids) and the customer it belongs to now.
# An unlinked id maps to itself; a merge re-points the merged id and everything mapped to it.
identities = Table(
    "identities",
    metadata,
    Column("id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("linked_at", DateTime(timezone=True)),
    Column("linked_by", Text),
    Index("identities_customer", "customer_id"),
)

# Ids whose data was erased (privacy): later events for them are counted, never stored.
suppressions = Table(
    "suppressions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("erased_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("erase_event_id", Text, nullable=False),
)

# API keys, stored hashed (SHA-256 of a 256-bit random secret); shown once at creation.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("source", Text),
    Column("name", Text),
    Column("key_hash", Text, nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True)),
)

# The outbox of stage changes, merges and erasures, written in the stager's batch transaction.
# `position` is the feed's order, given by the relay (dispatcher) after commit.
stage_changes = Table(
    "stage_changes",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("position", BigInteger, unique=True),
    Column("kind", Text, nullable=False),
    Column("journey", Text),
    Column("customer_id", Text, nullable=False),
    Column("from_stage", Text),
    Column("to_stage", Text),
    Column("merged_id", Text),
    Column("event_id", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# One row each: the highest position given (relays lock it) and the highest published to Kafka.
feed_head = Table(
    "feed_head", metadata,
    Column("one", Boolean, primary_key=True, server_default="true"),
    Column("position", BigInteger, nullable=False, server_default="0"),
)
feed_published = Table(
    "feed_published", metadata,
    Column("one", Boolean, primary_key=True, server_default="true"),
    Column("position", BigInteger, nullable=False, server_default="0"),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", Text, primary_key=True),
    Column("url", Text, nullable=False),
    Column("journeys", ARRAY(Text)),
    Column("to_stages", ARRAY(Text)),
    Column("description", Text),
    Column("secret", Text, nullable=False),
    Column("previous_secret", Text),
    Column("previous_secret_until", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("disabled_at", DateTime(timezone=True)),
    Column("disabled_reason", Text),
)

# One row per (endpoint, change): created with the change's position, leased by one dispatcher.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("endpoint_id", Text, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False),
    Column("change_id", BigInteger, ForeignKey("stage_changes.id", ondelete="CASCADE"), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("leased_until", DateTime(timezone=True)),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("latency_ms", Float),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True)),
    Index("webhook_deliveries_endpoint", "endpoint_id", "id"),
    Index("webhook_deliveries_change", "change_id"),
)
