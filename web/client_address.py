"""The client's address, believing ``X-Forwarded-For`` only from the proxies that
``settings.trusted_proxies`` names (none by default).

Behind trusted proxies the client is the right-most address of the header that is not
itself a trusted proxy: a client can prepend anything it likes, but not what our own
proxies appended after it.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache

from fastapi import Request

from commtest.settings import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=32)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(request: Request, settings: Settings) -> str:
    peer = request.client.host if request.client else "unknown"
    networks = _networks(tuple(settings.trusted_proxies))
    if not networks or not _trusted(peer, networks):
        return peer
    forwarded = [part.strip() for part in ",".join(request.headers.getlist("x-forwarded-for")).split(",") if part.strip()]
    for hop in reversed(forwarded):
        if not _trusted(hop, networks):
            return hop[:64]
    return forwarded[0][:64] if forwarded else peer


def is_https(request: Request, settings: Settings) -> bool:
    """TLS between the browser and us: the public URL says https, the connection is TLS,
    or a trusted proxy says it terminated TLS (``X-Forwarded-Proto: https``)."""
    if settings.public_base_url.lower().startswith("https://") or request.url.scheme == "https":
        return True
    networks = _networks(tuple(settings.trusted_proxies))
    peer = request.client.host if request.client else ""
    return bool(networks) and _trusted(peer, networks) and request.headers.get("x-forwarded-proto", "") == "https"
