"""What every provider does the same way over HTTP: one client per provider, the outcome of a
status code, Retry-After, and the one edge where network failures become a :class:`Result`.

A provider's ``send`` runs its whole exchange (token fetch, request, one retry) inside
:func:`bounded`, so a provider that hangs costs at most ``push_timeout`` and answers RETRY.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Final

import httpx

from ieum_chat.config import Settings

from .base import Outcome, Result

__all__ = [
    "bounded",
    "make_client",
    "retry_after",
    "short_key",
    "status_result",
]

log = logging.getLogger("ieum_chat.push")

USER_AGENT: Final = "ieum-chat-push"


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The system's trust store plus ``push_ca_file`` (a private push gateway, a test CA)."""
    context = ssl.create_default_context()
    if settings.push_ca_file:
        context.load_verify_locations(cafile=settings.push_ca_file)
    return context


def make_client(settings: Settings, *, http2: bool = False) -> httpx.AsyncClient:
    """One pooled client per provider: at most ``push_concurrency`` requests in flight."""
    return httpx.AsyncClient(
        http2=http2,
        verify=ssl_context(settings),
        timeout=httpx.Timeout(settings.push_timeout),
        limits=httpx.Limits(
            max_connections=settings.push_concurrency,
            max_keepalive_connections=settings.push_concurrency,
        ),
        headers={"user-agent": USER_AGENT},
        follow_redirects=False,
        trust_env=False,
    )


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        return None
    return max(0.0, when.timestamp() - time.time())


def status_result(response: httpx.Response, reason: str | None = None) -> Result:
    """The outcome every provider shares: 2xx sent, 429 and 5xx retried, other 4xx failed.
    Each provider decides first what means a dead token (its own codes and bodies)."""
    status = response.status_code
    label = reason or f"http_{status}"
    if 200 <= status < 300:
        return Result(Outcome.SENT)
    if status == 429 or status >= 500:
        return Result(Outcome.RETRY, label, retry_after(response))
    return Result(Outcome.FAILED, label)


def short_key(value: str, limit: int) -> str:
    """``value`` when it fits in ``limit`` bytes, else a stable digest of it: APNs refuses a
    collapse id over 64 bytes, whatever the couple id looks like."""
    if len(value.encode()) <= limit:
        return value
    return hashlib.sha256(value.encode()).hexdigest()[:limit]


async def bounded(
    platform: str, seconds: float, exchange: Callable[[], Awaitable[Result]]
) -> Result:
    """Run one send's whole exchange within ``seconds``; translate what the network does.

    This is the one place where httpx's exceptions become outcomes: a timeout or a broken
    connection is worth retrying, a request httpx refuses to build is not.
    """
    try:
        async with asyncio.timeout(seconds):
            return await exchange()
    except (TimeoutError, httpx.TimeoutException):
        return Result(Outcome.RETRY, "timeout")
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        log.warning("%s push refused by the client: %s", platform, exc)
        return Result(Outcome.FAILED, "bad_request")
    except httpx.TransportError as exc:
        log.info("%s push: %s: %s", platform, type(exc).__name__, exc)
        return Result(Outcome.RETRY, "connection_error")
