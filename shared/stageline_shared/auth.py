"""Authentication and per-key rate limits for the HTTP services."""

import base64
import binascii
import time
from collections.abc import Collection

from fastapi import Request

from stageline_shared.errors import ApiError, database_unavailable
from stageline_shared.keys import ApiKey, KeyKind, KeyStore, KeysUnavailable


def presented_key(request: Request) -> str | None:
    """The key in the Authorization header: HTTP Basic username (Segment's way) or Bearer."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            username, _, _ = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(401, "invalid_key", "the Basic credentials are not valid base64") from None
        return username or None
    return None


async def authenticate(store: KeyStore, secret: str | None, allowed: Collection[KeyKind]) -> ApiKey:
    """The live key for `secret`; 401 when missing, unknown or revoked, 403 for the wrong kind."""
    if not secret:
        raise ApiError(401, "missing_key", "an API key is required",
                       headers={"WWW-Authenticate": 'Basic realm="stageline"'})
    try:
        key = await store.lookup(secret)
    except KeysUnavailable:  # ingest's direct dispatch answers only ApiErrors itself
        raise database_unavailable() from None
    if key is None:
        raise ApiError(401, "invalid_key", "the API key is unknown or revoked")
    if key.kind not in allowed:
        raise ApiError(403, "wrong_key_kind",
                       f"a {key.kind} key cannot be used here; this needs a {' or '.join(allowed)} key")
    return key


class RateLimiter:
    """A token bucket per key: `rate` requests per second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def retry_after(self, key_id: str) -> float | None:
        """Take one token; None when allowed, else seconds until a token is available."""
        now = time.monotonic()
        tokens, at = self._buckets.get(key_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1:
            self._buckets[key_id] = (tokens - 1, now)
            return None
        self._buckets[key_id] = (tokens, now)
        return (1 - tokens) / self.rate
