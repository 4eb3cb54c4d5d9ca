"""Webhook deliveries in Postgres: claiming the ones due, recording what their attempts got.

A delivery is claimed by setting its lease (`leased_until`) in a short transaction, under
`FOR UPDATE SKIP LOCKED`: two dispatchers never hold the same delivery, and one killed mid-send
leaves a lease that simply runs out, after which another sends it again with the same
`webhook-id`. Only the head of each (endpoint, customer) queue is due: a delivery waits while an
earlier one for the same customer and endpoint is still pending (in flight, or waiting for its
retry), so a customer's changes arrive in feed order.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from stageline_shared import feed
from stageline_shared.raw_connection import Row, connection

_CLAIM = f"""
    WITH due AS (
        SELECT d.id FROM webhook_deliveries d
        JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.disabled_at IS NULL
        WHERE d.status = 'pending' AND d.next_attempt_at <= now()
          AND (d.leased_until IS NULL OR d.leased_until < now())
          AND NOT EXISTS (
              SELECT 1 FROM webhook_deliveries p
              WHERE p.endpoint_id = d.endpoint_id AND p.customer_id = d.customer_id
                AND p.status = 'pending' AND p.position < d.position)
        ORDER BY d.next_attempt_at, d.id
        LIMIT $1
        FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE webhook_deliveries w
    SET leased_until = now() + $2 * interval '1 second', attempts = w.attempts + 1
    FROM due, stage_changes c, webhook_endpoints e
    WHERE w.id = due.id AND c.id = w.change_id AND e.id = w.endpoint_id
    RETURNING w.id, w.endpoint_id, w.attempts, e.url, e.secret,
              CASE WHEN e.previous_secret_until > now() THEN e.previous_secret END AS previous_secret,
              {", ".join("c." + column for column in feed.COLUMNS)}
"""

_FINISH = """
    UPDATE webhook_deliveries w SET
        status = t.status, leased_until = NULL, last_status = t.code, last_error = t.error,
        latency_ms = t.latency_ms,
        next_attempt_at = now() + coalesce(t.retry_in_s, 0) * interval '1 second',
        finished_at = CASE WHEN t.status = 'pending' THEN NULL ELSE now() END
    FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::float8[], $6::float8[])
        AS t(id, status, code, error, latency_ms, retry_in_s)
    WHERE w.id = t.id
"""

_PRUNE = """
    DELETE FROM webhook_deliveries WHERE id IN (
        SELECT id FROM webhook_deliveries
        WHERE status <> 'pending' AND finished_at < now() - $1 * interval '1 day'
        LIMIT 10000)
"""

_DISABLE = """
    UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = $2
    WHERE id = $1 AND disabled_at IS NULL
    RETURNING id
"""


@dataclass(frozen=True)
class Claimed:
    """A delivery leased to this dispatcher, with what its request needs."""

    id: int
    endpoint_id: str
    attempt: int
    url: str
    secrets: tuple[str, ...]
    message_id: str
    change: dict[str, Any]  # the feed item
    recorded_at: datetime


@dataclass(frozen=True)
class Result:
    """What one attempt got: the new status, and when to try again if still pending."""

    id: int
    status: str  # pending | delivered | failed
    code: int | None
    error: str | None
    latency_ms: float | None
    retry_in_s: float | None


def _claimed(row: Row) -> Claimed:
    secrets = (row["secret"],) + ((row["previous_secret"],) if row["previous_secret"] else ())
    return Claimed(id=row["id"], endpoint_id=row["endpoint_id"], attempt=row["attempts"],
                   url=row["url"], secrets=secrets, message_id=f"msg_{row['position']}",
                   change=feed.item(row), recorded_at=row["recorded_at"])


async def claim(db: AsyncEngine, limit: int, lease_s: float) -> list[Claimed]:
    """Lease up to `limit` due deliveries for `lease_s` seconds, oldest due first."""
    async with db.begin() as conn:
        raw = await connection(conn)
        rows = await raw.fetch(_CLAIM, limit, lease_s)
    return sorted((_claimed(row) for row in rows), key=lambda c: c.change["position"])


async def finish(db: AsyncEngine, results: Sequence[Result]) -> None:
    """Record the attempts' results, in one statement."""
    if not results:
        return
    async with db.begin() as conn:
        raw = await connection(conn)
        await raw.execute(_FINISH, [r.id for r in results], [r.status for r in results],
                          [r.code for r in results], [r.error for r in results],
                          [r.latency_ms for r in results], [r.retry_in_s for r in results])


async def prune(db: AsyncEngine, retention_days: float) -> int:
    """Delete up to 10,000 deliveries finished more than `retention_days` ago; how many."""
    async with db.begin() as conn:
        raw = await connection(conn)
        done = await raw.execute(_PRUNE, retention_days)
    return int(done.split()[-1])


async def disable(db: AsyncEngine, endpoint_id: str, reason: str) -> bool:
    """Disable an endpoint (no more deliveries, none created); False if it already was."""
    async with db.begin() as conn:
        raw = await connection(conn)
        return await raw.fetchval(_DISABLE, endpoint_id, reason) is not None
