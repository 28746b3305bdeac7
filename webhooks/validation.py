"""Endpoint URLs a shop may register: http(s) only, no credentials in the URL, and
(unless WEBHOOK_ALLOW_PRIVATE_URLS, off in production) no loopback, private,
link-local or otherwise non-public address, so nobody can make Concord call into
its own network (SSRF). The host is resolved when the endpoint is registered and
again before every delivery (its DNS may have changed)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from core.errors import ConcordError

from . import conf

MAX_URL_LENGTH = 2048


class InvalidEndpointUrl(ConcordError):
    code = "invalid_url"
    http_status = 400


def _refuse(message: str) -> InvalidEndpointUrl:
    return InvalidEndpointUrl(message, details={"url": [message]})


def _not_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def resolve(host: str, port: int) -> list[str]:
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)})
    except (socket.gaierror, UnicodeError, ValueError):
        return []


def check_address(host: str, port: int) -> str | None:
    """None if Concord may connect to host:port now, else why not."""
    if conf.allow_private_urls():
        return None
    addresses = resolve(host, port)
    if not addresses:
        return f"{host} does not resolve to an address."
    blocked = [a for a in addresses if _not_public(a)]
    if blocked:
        return f"{host} resolves to a loopback, private or link-local address ({blocked[0]}); not allowed."
    return None


def validate_endpoint_url(url: object) -> str:
    if not isinstance(url, str) or not url.strip():
        raise _refuse("A URL is required.")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise _refuse(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refuse("The URL is not valid.") from None
    if parts.scheme not in ("http", "https"):
        raise _refuse("Only http and https URLs can receive webhooks.")
    if not parts.hostname:
        raise _refuse("The URL has no host.")
    if parts.username or parts.password:
        raise _refuse("Credentials in the URL are not allowed; verify the signature instead.")
    if parts.fragment:
        raise _refuse("The URL must not have a fragment.")
    why_not = check_address(parts.hostname, port or (443 if parts.scheme == "https" else 80))
    if why_not:
        raise _refuse(why_not)
    return url
