"""Which Web Push endpoints the server may call.

A subscription's endpoint is a URL a client chose; without a check, registering
``https://10.0.0.5/admin`` would make the server POST into its own network (SSRF). An
endpoint must be https and every address its host resolves to must be public, unless
``push_allow_private``. The provider checks again before each push, and :func:`peer_guard`
checks the address the connection actually reached, so a name that resolves to a public
address at the check and a private one at connect time (DNS rebinding) is still refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

__all__ = [
    "EndpointRefused",
    "EndpointUnresolved",
    "check_endpoint_async",
    "peer_guard",
]

Trace = Callable[[str, dict[str, Any]], Awaitable[None]]


class EndpointRefused(ValueError):
    """The endpoint is not one the server calls: not https, or an address it must not reach."""


class EndpointUnresolved(EndpointRefused):
    """The endpoint's host does not resolve (now): it may again later."""


def _split(url: str) -> tuple[str, int]:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or 443
    except ValueError as exc:
        raise EndpointRefused(f"push endpoint {url!r} is not a valid URL: {exc}") from None
    if parts.scheme != "https":
        raise EndpointRefused(f"push endpoint {url!r} refused: only https endpoints are called")
    if not parts.hostname:
        raise EndpointRefused(f"push endpoint {url!r} refused: it names no host")
    if parts.username is not None or parts.password is not None:
        raise EndpointRefused(f"push endpoint {url!r} refused: credentials in the URL")
    return parts.hostname, port


def _refusal(address: str) -> str | None:
    """Why ``address`` is not to be called, or None when it is a public unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 reaches 10.0.0.1
    kinds = (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("non-global", not ip.is_global),  # shared address space (100.64/10) and the like
    )
    for kind, matches in kinds:
        if matches:
            return f"{ip} is a {kind} address"
    return None


def _check_addresses(url: str, addresses: Iterable[str]) -> None:
    for address in addresses:
        why = _refusal(address)
        if why is not None:
            raise EndpointRefused(
                f"push endpoint {url!r} refused: {why} (set IEUM_PUSH_ALLOW_PRIVATE to allow)"
            )


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        return None


async def check_endpoint_async(url: str, *, allow_private: bool) -> None:
    """Raise ValueError (:class:`EndpointRefused`) when the server must not POST to ``url``:
    not https, or (unless ``allow_private``) a host resolving to an address that is not
    public; the resolver runs through the event loop."""
    host, port = _split(url)
    if allow_private:
        return
    literal = _literal(host)
    if literal is not None:
        _check_addresses(url, [literal])
        return
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise EndpointUnresolved(f"push endpoint {url!r}: cannot resolve {host}: {exc}") from None
    _check_addresses(url, [str(info[4][0]) for info in infos])


def peer_guard(url: str) -> Trace:
    """An httpx ``trace`` extension refusing a connection whose peer is not a public address:
    the check made on the address connected to, after the resolver had its last say."""

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event != "connection.connect_tcp.complete":
            return
        stream = info.get("return_value")
        peer = stream.get_extra_info("server_addr") if stream is not None else None
        why = _refusal(str(peer[0])) if peer else "the peer's address is unknown"
        if why is not None:
            if stream is not None:
                await stream.aclose()
            raise EndpointRefused(f"push endpoint {url!r} refused at connect: {why}")

    return trace
