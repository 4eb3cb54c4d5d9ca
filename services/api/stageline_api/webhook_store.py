"""Webhook endpoints and their deliveries in Postgres, as the admin API manages them.

Secrets are kept as given (`whsec_` and 32 random bytes in base64): the dispatcher signs with
them, so unlike API keys they cannot be stored hashed. They leave Postgres in two places only:
the 201 of a creation and of a rotation, and the dispatcher's signatures.
"""

import base64
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from stageline_shared import feed

ENDPOINT_ID_PATTERN = r"^wh_[0-9a-f]{12}$"
_PUBLIC = ("id, url, journeys, to_stages, description, created_at, disabled_at, disabled_reason, "
           "previous_secret_until")


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def create_endpoint(conn: AsyncConnection, url: str, journeys: list[str] | None,
                          to_stages: list[str] | None, description: str | None) -> tuple[Any, str]:
    secret = new_secret()
    row = (await conn.execute(text(f"""
        INSERT INTO webhook_endpoints (id, url, journeys, to_stages, description, secret)
        VALUES (:id, :url, :journeys, :to_stages, :description, :secret)
        RETURNING {_PUBLIC}
    """), {"id": f"wh_{secrets.token_hex(6)}", "url": url, "journeys": journeys,
           "to_stages": to_stages, "description": description, "secret": secret})).one()
    return row, secret


async def list_endpoints(conn: AsyncConnection) -> list[Any]:
    result = await conn.execute(text(f"SELECT {_PUBLIC} FROM webhook_endpoints ORDER BY created_at, id"))
    return list(result)


async def get_endpoint(conn: AsyncConnection, endpoint_id: str) -> Any | None:
    result = await conn.execute(text(f"SELECT {_PUBLIC} FROM webhook_endpoints WHERE id = :id"),
                                {"id": endpoint_id})
    return result.first()


async def delete_endpoint(conn: AsyncConnection, endpoint_id: str) -> bool:
    """Delete an endpoint and its deliveries (pending ones are never sent)."""
    result = await conn.execute(text("DELETE FROM webhook_endpoints WHERE id = :id RETURNING id"),
                                {"id": endpoint_id})
    return result.first() is not None


async def rotate_secret(
    conn: AsyncConnection, endpoint_id: str, grace_s: float
) -> tuple[str, datetime] | None:
    """A new secret; the current one stays valid (both signatures sent) for `grace_s` seconds."""
    secret = new_secret()
    row = (await conn.execute(text("""
        UPDATE webhook_endpoints SET previous_secret = secret, secret = :secret,
            previous_secret_until = now() + :grace * interval '1 second'
        WHERE id = :id RETURNING previous_secret_until
    """), {"id": endpoint_id, "secret": secret, "grace": grace_s})).first()
    return None if row is None else (secret, row.previous_secret_until)


async def enable_endpoint(conn: AsyncConnection, endpoint_id: str) -> bool:
    result = await conn.execute(text("""
        UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL
        WHERE id = :id RETURNING id
    """), {"id": endpoint_id})
    return result.first() is not None


async def deliveries(conn: AsyncConnection, endpoint_id: str, status: str | None, before: int | None,
                     limit: int) -> list[Any]:
    """The endpoint's deliveries, newest first, keyset-paged by id."""
    result = await conn.execute(text("""
        SELECT d.id, d.position, c.kind, d.customer_id, d.status, d.attempts, d.last_status,
               d.last_error, d.latency_ms, d.created_at, d.next_attempt_at, d.finished_at
        FROM webhook_deliveries d JOIN stage_changes c ON c.id = d.change_id
        WHERE d.endpoint_id = :endpoint AND (CAST(:status AS text) IS NULL OR d.status = :status)
          AND (CAST(:before AS bigint) IS NULL OR d.id < :before)
        ORDER BY d.id DESC LIMIT :limit
    """), {"endpoint": endpoint_id, "status": status, "before": before, "limit": limit})
    return list(result)


async def replay(conn: AsyncConnection, endpoint_id: str, since: datetime) -> int:
    """Queue again every change recorded since `since` that the endpoint's filters take and that
    is not pending for it already (a second pending copy could be sent beside the first)."""
    result = await conn.execute(text(f"""
        INSERT INTO webhook_deliveries (endpoint_id, change_id, position, customer_id)
        SELECT e.id, c.id, c.position, c.customer_id
        FROM webhook_endpoints e JOIN stage_changes c ON c.position IS NOT NULL
            AND c.position <= (SELECT position FROM feed_head)
            AND c.recorded_at >= :since AND {feed.ENDPOINT_TAKES}
        WHERE e.id = :endpoint AND NOT EXISTS (
            SELECT 1 FROM webhook_deliveries p
            WHERE p.endpoint_id = e.id AND p.change_id = c.id AND p.status = 'pending')
        ORDER BY c.position
    """), {"endpoint": endpoint_id, "since": since})
    return result.rowcount
