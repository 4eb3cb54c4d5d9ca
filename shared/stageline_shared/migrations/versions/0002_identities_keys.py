"""identities, suppressions, api keys; touchpoint type, ids and context

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("touchpoints", sa.Column("type", sa.Text(), server_default="track", nullable=False))
    op.add_column("touchpoints", sa.Column("anonymous_id", sa.Text(), nullable=True))
    op.add_column("touchpoints", sa.Column("user_id", sa.Text(), nullable=True))
    op.add_column(
        "touchpoints",
        sa.Column("context", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
    )
    op.add_column("touchpoints", sa.Column("source", sa.Text(), nullable=True))
    op.create_table(
        "identities",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("linked_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("identities_customer", "identities", ["customer_id"])
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("erase_event_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("key_hash", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("suppressions")
    op.drop_index("identities_customer", table_name="identities")
    op.drop_table("identities")
    for column in ("source", "context", "user_id", "anonymous_id", "type"):
        op.drop_column("touchpoints", column)
