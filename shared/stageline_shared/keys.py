"""API keys: write keys per source for ingest, read keys for the API, admin keys to manage them.

A key is a 256-bit random secret shown once at creation; only its SHA-256 is stored (the secret
has full entropy, so a slow hash adds nothing). Lookups are cached briefly per process, so a
revocation takes effect within `cache_s` seconds of Postgres being reachable.
"""

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from stageline_shared import postgres_errors

KeyKind = Literal["write", "read", "admin"]
KINDS: tuple[KeyKind, ...] = ("write", "read", "admin")
MAX_LABEL = 100
KEY_ID_PATTERN = r"^key_[0-9a-f]{12}$"  # what create_key makes
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# During a database outage, how often a live key's lookup tries Postgres again.
_OUTAGE_RECHECK_S = 1.0


class KeysUnavailable(Exception):
    """A secret never seen live cannot be checked: Postgres is out of reach."""


@dataclass(frozen=True)
class ApiKey:
    id: str
    kind: KeyKind
    source: str | None
    name: str | None


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_new_key(kind: str, source: str | None, name: str | None) -> None:
    """Refuse a key that could not be used or told apart; ValueError names the problem.

    A write key's source is stamped on every event it sends, so it is required and, like the
    name, a short printable label.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    if kind == "write" and source is None:
        raise ValueError("a write key needs a source (where its events come from, e.g. 'web shop')")
    for field, value in (("source", source), ("name", name)):
        if value is None:
            continue
        if not value.strip():
            raise ValueError(f"{field} must not be blank")
        if len(value) > MAX_LABEL:
            raise ValueError(f"{field} is longer than {MAX_LABEL} characters")
        if _CONTROL.search(value):
            raise ValueError(f"{field} contains a control character")


async def create_key(
    conn: AsyncConnection, kind: KeyKind, source: str | None = None, name: str | None = None
) -> tuple[ApiKey, str]:
    """Store a new key; returns it and its secret (the only time the secret exists)."""
    check_new_key(kind, source, name)
    key = ApiKey(id=f"key_{secrets.token_hex(6)}", kind=kind, source=source, name=name)
    secret = f"sl_{kind}_{secrets.token_urlsafe(32)}"
    await conn.execute(
        text("INSERT INTO api_keys (id, kind, source, name, key_hash) "
             "VALUES (:id, :kind, :source, :name, :hash)"),
        {"id": key.id, "kind": kind, "source": source, "name": name, "hash": hash_key(secret)},
    )
    return key, secret


async def revoke_key(conn: AsyncConnection, key_id: str) -> bool:
    """Revoke a key; False when no live key has that id."""
    result = await conn.execute(
        text("UPDATE api_keys SET revoked_at = now() WHERE id = :id AND revoked_at IS NULL "
             "RETURNING id"),
        {"id": key_id},
    )
    return result.first() is not None


async def list_keys(conn: AsyncConnection) -> list[dict[str, Any]]:
    result = await conn.execute(text(
        "SELECT id, kind, source, name, created_at, revoked_at FROM api_keys ORDER BY created_at, id"
    ))
    return [dict(row._mapping) for row in result]


class KeyStore:
    """Resolves presented secrets to live keys, with a short per-process cache.

    A key found live is checked again after `cache_s` seconds; while Postgres is out of reach it
    stays valid (ingest keeps taking events through a database outage), and a revocation made
    meanwhile applies at the first check after Postgres is back. A secret never seen live cannot
    be checked during an outage: KeysUnavailable.
    """

    _UNKNOWN_LIMIT = 10_000  # unknown secrets sprayed at us must not grow memory

    def __init__(self, db: AsyncEngine, cache_s: float = 5.0) -> None:
        self._db = db
        self._cache_s = cache_s
        # Live keys by digest, with when to check each again: as many as keys in use.
        self._live: dict[str, tuple[float, ApiKey]] = {}
        self._unknown: dict[str, float] = {}  # unknown or revoked, until when

    async def lookup(self, secret: str) -> ApiKey | None:
        digest = hash_key(secret)
        now = time.monotonic()
        live = self._live.get(digest)
        if live is not None and live[0] > now:
            return live[1]
        if self._unknown.get(digest, 0.0) > now:
            return None
        try:
            async with self._db.connect() as conn:
                row = (await conn.execute(
                    text("SELECT id, kind, source, name FROM api_keys "
                         "WHERE key_hash = :hash AND revoked_at IS NULL"),
                    {"hash": digest},
                )).first()
        except Exception as exc:
            if not postgres_errors.unavailable(exc):
                raise
            if live is None:
                raise KeysUnavailable from exc
            # Valid when last seen: keep serving it, and try Postgres again in a second at most.
            self._live[digest] = (now + min(self._cache_s, _OUTAGE_RECHECK_S), live[1])
            return live[1]
        if row is None:
            self._live.pop(digest, None)
            if len(self._unknown) >= self._UNKNOWN_LIMIT:
                self._unknown.clear()
            self._unknown[digest] = now + self._cache_s
            return None
        key = ApiKey(row.id, row.kind, row.source, row.name)
        self._live[digest] = (now + self._cache_s, key)
        return key
