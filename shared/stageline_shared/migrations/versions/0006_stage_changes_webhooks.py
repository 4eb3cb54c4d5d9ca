"""Acting on stages: the audience index, the change outbox and feed, webhook endpoints and deliveries

- customer_stages gets an index on (journey, stage, entered_at, customer_id): an audience page is
  one index range scan in keyset order, whatever the number of customers.
- stage_changes is the outbox the stager writes in each batch's transaction (stage changes,
  merges, erasures). `position` is null until the relay gives it the next position of the feed;
  relays serialise on the one row of feed_head, so positions become visible in order and a
  reader continuing after a position never skips a change committed later.
- webhook_endpoints and webhook_deliveries: one delivery row per (endpoint, change), created by
  the relay with the position, leased by one dispatcher at a time.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 08:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = [
    """
        CREATE INDEX customer_stages_audience
            ON customer_stages (journey, stage, entered_at, customer_id)
    """,
    """
        CREATE TABLE stage_changes (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                position bigint UNIQUE,
                kind text NOT NULL CHECK (kind IN ('stage', 'merge', 'erase')),
                journey text,
                customer_id text NOT NULL,
                from_stage text,
                to_stage text,
                merged_id text,
                event_id text NOT NULL,
                occurred_at timestamptz NOT NULL,
                recorded_at timestamptz NOT NULL DEFAULT now()
        )
    """,
    """
        CREATE INDEX stage_changes_unpositioned ON stage_changes (id) WHERE position IS NULL
    """,
    """
        CREATE INDEX stage_changes_customer ON stage_changes (customer_id)
    """,
    """
        CREATE INDEX stage_changes_merged ON stage_changes (merged_id) WHERE merged_id IS NOT NULL
    """,
    """
        CREATE TABLE feed_head (
                one boolean PRIMARY KEY DEFAULT true CHECK (one),
                position bigint NOT NULL DEFAULT 0
        )
    """,
    """
        INSERT INTO feed_head DEFAULT VALUES
    """,
    """
        CREATE TABLE feed_published (
                one boolean PRIMARY KEY DEFAULT true CHECK (one),
                position bigint NOT NULL DEFAULT 0
        )
    """,
    """
        INSERT INTO feed_published DEFAULT VALUES
    """,
    """
        CREATE TABLE webhook_endpoints (
                id text PRIMARY KEY,
                url text NOT NULL,
                journeys text[],
                to_stages text[],
                description text,
                secret text NOT NULL,
                previous_secret text,
                previous_secret_until timestamptz,
                created_at timestamptz NOT NULL DEFAULT now(),
                disabled_at timestamptz,
                disabled_reason text
        )
    """,
    """
        CREATE TABLE webhook_deliveries (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                endpoint_id text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
                change_id bigint NOT NULL REFERENCES stage_changes (id) ON DELETE CASCADE,
                position bigint NOT NULL,
                customer_id text NOT NULL,
                status text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
                attempts integer NOT NULL DEFAULT 0,
                next_attempt_at timestamptz NOT NULL DEFAULT now(),
                leased_until timestamptz,
                last_status integer,
                last_error text,
                latency_ms double precision,
                created_at timestamptz NOT NULL DEFAULT now(),
                finished_at timestamptz
        )
    """,
    """
        CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id)
            WHERE status = 'pending'
    """,
    """
        CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (endpoint_id, customer_id, position)
            WHERE status = 'pending'
    """,
    """
        CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id)
    """,
    """
        CREATE INDEX webhook_deliveries_change ON webhook_deliveries (change_id)
    """,
]


def upgrade() -> None:
    # One statement per execute: asyncpg prepares each, and a prepared statement holds one.
    for statement in UPGRADE:
        op.execute(statement)


DOWNGRADE = [
    """
        DROP TABLE webhook_deliveries
    """,
    """
        DROP TABLE webhook_endpoints
    """,
    """
        DROP TABLE feed_published
    """,
    """
        DROP TABLE feed_head
    """,
    """
        DROP TABLE stage_changes
    """,
    """
        DROP INDEX customer_stages_audience
    """,
]


def downgrade() -> None:
    # One statement per execute: asyncpg prepares each, and a prepared statement holds one.
    for statement in DOWNGRADE:
        op.execute(statement)
