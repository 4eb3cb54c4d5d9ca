"""Sending one webhook: the Standard Webhooks request, over aiohttp, to vetted addresses only.

The connector resolves each host name itself and refuses every address the policy refuses
(stageline_shared.webhook_targets) before connecting, so the check holds for the address actually
dialled, whatever the name resolved to at registration. aiohttp dials a literal address without
asking the resolver, so those are checked here, before each request. Redirects are never followed: a 3xx is
an answer like any other non-2xx, and retried.
"""

import functools
import ipaddress
import socket
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from stageline_dispatcher.deliveries import Claimed
from stageline_dispatcher.signing import signature
from stageline_shared.feed import WEBHOOK_TYPES
from stageline_shared.webhook_targets import Allowance, address_refusal

MAX_ERROR = 200  # characters of an error or refusal kept with the delivery


class RefusedAddress(OSError):
    """Every address a webhook host resolved to is refused by the policy."""


class GuardedResolver(ThreadedResolver):
    """getaddrinfo, then only the addresses webhooks may reach."""

    def __init__(self, allow: Collection[Allowance]) -> None:
        super().__init__()
        self._allow = tuple(allow)

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await super().resolve(host, port, family)
        kept = [r for r in results if address_refusal(r["host"], self._allow) is None]
        if not kept:
            reason = address_refusal(results[0]["host"], self._allow) if results else "no address"
            raise RefusedAddress(f"refused to connect to {host}: {reason}")
        return kept


@dataclass(frozen=True)
class Attempt:
    """What a request got: the status (None: no answer), Retry-After, the error, the time."""

    status: int | None
    retry_after: str | None
    error: str | None
    latency_ms: float


def body(delivery: Claimed) -> bytes:
    """The payload: Standard Webhooks' {type, timestamp, data}, data being the feed item."""
    return orjson.dumps({
        "type": WEBHOOK_TYPES[delivery.change["kind"]],
        "timestamp": delivery.change["recorded_at"],
        "data": delivery.change,
    })


def make_session(allow: Collection[Allowance], timeout_s: float, concurrency: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(allow), limit=concurrency,
                                     limit_per_host=concurrency, ttl_dns_cache=10)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s),
        headers={"User-Agent": "Stageline-Webhooks/1"}, skip_auto_headers=("Accept-Encoding",),
        auto_decompress=False,
    )


@functools.lru_cache(maxsize=4096)
def literal_refusal(url: str, allow: tuple[Allowance, ...]) -> str | None:
    """Why a URL whose host is a literal address may not be dialled, or None."""
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None  # a name: the resolver checks what it resolves to
    reason = address_refusal(host, allow)
    return None if reason is None else f"refused to connect to {host}: {reason}"


async def send(session: aiohttp.ClientSession, delivery: Claimed, allow: tuple[Allowance, ...]) -> Attempt:
    """POST one delivery, signed with every secret valid now."""
    refused = literal_refusal(delivery.url, allow)
    if refused:
        return Attempt(None, None, refused, 0.0)
    payload = body(delivery)
    timestamp = int(time.time())
    headers: dict[str, Any] = {
        "Content-Type": "application/json",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(delivery.secrets, delivery.message_id, timestamp, payload),
    }
    started = time.perf_counter()
    try:
        async with session.post(delivery.url, data=payload, headers=headers,
                                allow_redirects=False) as response:
            await response.read()
            return Attempt(response.status, response.headers.get("Retry-After"), None,
                           (time.perf_counter() - started) * 1000)
    except TimeoutError:
        return Attempt(None, None, "timed out", (time.perf_counter() - started) * 1000)
    except aiohttp.ClientConnectorError as exc:
        vetted = isinstance(exc.os_error, RefusedAddress)
        error = str(exc.os_error) if vetted else f"cannot connect: {exc.os_error}"
        return Attempt(None, None, error[:MAX_ERROR], (time.perf_counter() - started) * 1000)
    except (aiohttp.ClientError, OSError) as exc:
        return Attempt(None, None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR],
                       (time.perf_counter() - started) * 1000)
