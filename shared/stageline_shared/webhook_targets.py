"""Where webhooks may be sent: http(s) URLs whose addresses are public, unless a setting allows
loopback or private networks (a local receiver in development, a CRM inside the same VPC).

The API checks a URL when it is registered; the dispatcher checks every address it resolves the
host to before connecting (stageline_dispatcher.sender), so a name that later resolves to an
internal address is refused too.
"""

import ipaddress
from collections.abc import Collection
from typing import Literal
from urllib.parse import urlsplit

Allowance = Literal["loopback", "private"]
MAX_URL = 2048


class TargetRefused(ValueError):
    """A webhook URL or address that the policy does not allow; the message says why."""


def address_refusal(address: str, allow: Collection[Allowance]) -> str | None:
    """Why an IP address may not receive webhooks, or None if it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return None if "loopback" in allow else f"{ip} is a loopback address"
    if ip.is_link_local:
        return f"{ip} is a link-local address"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return f"{ip} is not a unicast address"
    if ip.is_private or not ip.is_global:
        return None if "private" in allow else f"{ip} is a private address"
    return None


def check_url(url: str, allow: Collection[Allowance]) -> str:
    """The URL if it may receive webhooks; TargetRefused naming the problem otherwise.

    A host given as a name is checked again by the dispatcher at each connection, on the
    addresses it resolves to; a literal address is checked here too.
    """
    if len(url) > MAX_URL:
        raise TargetRefused(f"url is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"url is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("url must start with http:// or https://")
    host = parts.hostname
    if not host:
        raise TargetRefused("url has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("url must not hold credentials; the signature authenticates us")
    if port == 0:
        raise TargetRefused("url has port 0")
    if any(ord(c) < 0x21 or c == "\x7f" for c in url):
        raise TargetRefused("url holds spaces or control characters")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if (host == "localhost" or host.endswith(".localhost")) and "loopback" not in allow:
            raise TargetRefused(f"{host} is a loopback address") from None
        return url
    reason = address_refusal(host, allow)
    if reason:
        raise TargetRefused(reason)
    return url
