"""Standard Webhooks signatures: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`, keyed by
the base64 part of a `whsec_` secret; several, space-separated, while a rotated secret is valid."""

import base64
import functools
import hashlib
import hmac
from collections.abc import Iterable

PREFIX = "whsec_"


@functools.lru_cache(maxsize=4096)
def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def signature(secrets: Iterable[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for a message signed with every secret given."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(_key(s), signed, hashlib.sha256).digest()).decode()
        for s in secrets)
