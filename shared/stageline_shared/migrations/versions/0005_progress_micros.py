"""customer_progress documents: times as integer microseconds; no last-touchpoint fields

Each journey's entry was [stage, entered_at, last_touchpoint_at, last_event_id, rule_counts,
rule_latest] with RFC 3339 times, which the stager parsed for every customer of every batch.
It is now [stage, entered_at, rule_counts, rule_latest] with times as integer microseconds since
the Unix epoch (UTC). The last-touchpoint fields were never read and are dropped: a downgrade
restores the old shape with them null.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 19:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# extract(epoch …) is exact (numeric) and so is adding whole microseconds back.
_MICROS = "(extract(epoch FROM ({})::timestamptz) * 1000000)::bigint"
_TIME = "to_char((timestamptz 'epoch' + ({})::bigint * interval '1 microsecond') AT TIME ZONE 'UTC', " \
        "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"


def _rewrite(entry: str, latest_at: str, latest_index: int) -> str:
    """Rebuild every document: `entry` per journey (j.value, with r.latest already rebuilt from
    the entry's element `latest_index`, each match's time through `latest_at` of l.value->>0)."""
    return f"""
        UPDATE customer_progress SET state = (
            SELECT coalesce(json_object_agg(j.key, {entry}), '{{}}'::json)
            FROM json_each(customer_progress.state) AS j,
                 LATERAL (SELECT coalesce(json_object_agg(l.key, json_build_array(
                                     {latest_at}, l.value->1)), '{{}}'::json) AS latest
                          FROM json_each(j.value->{latest_index}) AS l) AS r
        )
    """


def upgrade() -> None:
    op.execute(_rewrite(
        f"json_build_array(j.value->>0, {_MICROS.format('j.value->>1')}, j.value->4, r.latest)",
        _MICROS.format("l.value->>0"), 5,
    ))


def downgrade() -> None:
    op.execute(_rewrite(
        f"json_build_array(j.value->>0, {_TIME.format('j.value->>1')}, NULL, NULL, j.value->2, "
        "r.latest)",
        _TIME.format("l.value->>0"), 3,
    ))
