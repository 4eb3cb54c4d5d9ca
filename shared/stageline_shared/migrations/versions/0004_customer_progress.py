"""customer_progress: one row of journey progress per customer; customer_stages only the stages

The stager read and rewrote one customer_stages row per journey for every customer of a batch.
Now the engine's state for all journeys is one json document per customer (customer_progress),
and customer_stages, which the API reads, holds a row only for a journey the customer has a
stage in, written only when that stage changes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 15:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_progress",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    op.execute("""
        INSERT INTO customer_progress (customer_id, state)
        SELECT customer_id, json_object_agg(journey, json_build_array(
            stage, entered_at, last_touchpoint_at, last_event_id, rule_counts, rule_latest))
        FROM customer_stages GROUP BY customer_id
    """)
    op.execute("DELETE FROM customer_stages WHERE stage IS NULL")
    op.alter_column("customer_stages", "stage", nullable=False)
    for column in ("last_event_id", "last_touchpoint_at", "rule_counts", "rule_latest"):
        op.drop_column("customer_stages", column)


def downgrade() -> None:
    op.alter_column("customer_stages", "stage", nullable=True)
    op.add_column("customer_stages", sa.Column("last_event_id", sa.Text()))
    op.add_column("customer_stages", sa.Column("last_touchpoint_at", sa.DateTime(timezone=True)))
    op.add_column("customer_stages", sa.Column("rule_counts", sa.JSON(), server_default="{}",
                                               nullable=False))
    op.add_column("customer_stages", sa.Column("rule_latest", sa.JSON(), server_default="{}",
                                               nullable=False))
    op.execute("""
        INSERT INTO customer_stages (journey, customer_id, stage, entered_at, last_event_id,
                                     last_touchpoint_at, rule_counts, rule_latest)
        SELECT j.key, p.customer_id, j.value->>0, (j.value->>1)::timestamptz, j.value->>3,
               (j.value->>2)::timestamptz, j.value->4, j.value->5
        FROM customer_progress p, json_each(p.state) AS j
        ON CONFLICT (journey, customer_id) DO UPDATE SET
            last_event_id = excluded.last_event_id,
            last_touchpoint_at = excluded.last_touchpoint_at,
            rule_counts = excluded.rule_counts, rule_latest = excluded.rule_latest
    """)
    op.drop_table("customer_progress")
