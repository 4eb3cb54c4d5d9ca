"""customer_stages rule state as json, not jsonb

The stager reads and rewrites both columns of every customer it touches, every batch, and only
ever as whole documents: json is stored and returned as written, sparing Postgres the jsonb
conversion both ways (about a tenth of the stager's throughput, measured by `make bench`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 15:05:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _retype(kind: str) -> None:
    op.execute(f"""
        ALTER TABLE customer_stages
            ALTER COLUMN rule_counts DROP DEFAULT,
            ALTER COLUMN rule_latest DROP DEFAULT,
            ALTER COLUMN rule_counts TYPE {kind} USING rule_counts::{kind},
            ALTER COLUMN rule_latest TYPE {kind} USING rule_latest::{kind},
            ALTER COLUMN rule_counts SET DEFAULT '{{}}',
            ALTER COLUMN rule_latest SET DEFAULT '{{}}'
    """)


def upgrade() -> None:
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")
