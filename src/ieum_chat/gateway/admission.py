"""Who may open a socket: the checks of every handshake, for every shell that opens one (the
raw WebSocket served from the event loop, its ASGI twin, and the request that creates a
SockJS session), in one place so that they cannot drift apart.

In order: a draining server refuses (503 SERVER_SHUTDOWN); an origin outside
``IEUM_ALLOWED_ORIGINS`` is refused (403 UNAUTHORIZED); past the node's admission rate
(``IEUM_ADMISSION_RATE`` new sessions a second, in bursts of ``IEUM_ADMISSION_BURST``) a new
session is refused before it costs a token check (503 UNAVAILABLE with ``Retry-After``, counted
in ``ieum_admissions_refused_total``), and so is one arriving while
``IEUM_ADMISSION_BACKLOG`` CONNECTs and SUBSCRIBEs are being handled: a reconnect storm is
spread over time instead of stampeding the database, and never queues longer than clients
wait; a token present in the ``token``
query parameter or an ``Authorization: Bearer`` header is verified before the upgrade and a
bad one refused (401 AUTH_FAILED, counted in ``ieum_auth_failures_total{where="handshake"}``).
Without a token the socket opens and the STOMP CONNECT must carry one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from ieum_chat.auth import Principal, bearer_token
from ieum_chat.chat import codec
from ieum_chat.errors import AuthError, ErrorCode, error_payload
from ieum_chat.gateway.connection import Gateway
from ieum_chat.observability import metrics
from ieum_chat.store.records import User

__all__ = [
    "Admission",
    "Refusal",
    "admit",
    "handshake_token",
    "origin_allowed",
    "select_subprotocol",
]

log = logging.getLogger(__name__)

_TOO_MANY = "too many new connections; retry later"
_BEHIND_RETRY_AFTER = 1  # seconds: the backlog of a node that is behind drains in about that

# Highest first: the server picks the best version the client offers.
_SUBPROTOCOLS = (("v12.stomp", "1.2"), ("v11.stomp", "1.1"), ("v10.stomp", "1.0"))


def select_subprotocol(offered: Sequence[str]) -> tuple[str | None, str | None]:
    """(subprotocol to select, STOMP version it implies)."""
    for name, version in _SUBPROTOCOLS:
        if name in offered:
            return name, version
    return None, None


def origin_allowed(origin: str | None, allowed: Sequence[str]) -> bool:
    return origin is None or "*" in allowed or origin in allowed


def handshake_token(query: str | Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    """The token a handshake carries: the ``token`` query parameter (first value, after
    percent-decoding), else an ``Authorization: Bearer`` header (``headers`` by lower-case
    name). ``query`` is the raw query string or its parsed first values."""
    if isinstance(query, str):
        query = dict(reversed(parse_qsl(query, keep_blank_values=True)))
    return query.get("token") or bearer_token(headers.get("authorization"))


@dataclass(frozen=True, slots=True)
class Admission:
    """A handshake let through: the subprotocol to select and who, if the token came with it."""

    subprotocol: str | None
    version: str | None
    principal: Principal | None
    user: User | None


class Refusal(Exception):
    """A handshake refused with an HTTP status and the error JSON of :func:`error_payload`;
    ``retry_after``: seconds the client should wait before it tries again."""

    def __init__(
        self, status: int, payload: dict[str, Any], *, retry_after: int | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.payload = payload
        self.retry_after = retry_after

    @classmethod
    def of(
        cls,
        status: int,
        code: ErrorCode,
        *,
        detail: str | None = None,
        retry_after: int | None = None,
    ) -> Refusal:
        return cls(status, error_payload(code, detail=detail), retry_after=retry_after)

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """Headers of the HTTP response beside the JSON body."""
        return () if self.retry_after is None else (("Retry-After", str(self.retry_after)),)

    @property
    def body(self) -> bytes:
        return codec.dumps(self.payload)


async def admit(
    gateway: Gateway,
    headers: Mapping[str, str],
    query: str | Mapping[str, str],
    offered: Sequence[str] = (),
) -> Admission:
    """Let a handshake through or raise :class:`Refusal` (see the module docstring).
    ``headers`` by lower-case name; ``offered``: the subprotocols the client offers."""
    if not gateway.accepting:
        raise Refusal.of(503, ErrorCode.SERVER_SHUTDOWN)
    if not origin_allowed(headers.get("origin"), gateway.settings.allowed_origins):
        raise Refusal.of(403, ErrorCode.UNAUTHORIZED, detail="origin not allowed")
    if gateway.setups >= gateway.settings.admission_backlog:
        # The node is behind on the sessions it already let in: a new one would only wait
        # behind them (until its client gives up and tries again, twice the work).
        metrics.ADMISSIONS_REFUSED.inc()
        raise Refusal.of(
            503, ErrorCode.UNAVAILABLE, detail=_TOO_MANY, retry_after=_BEHIND_RETRY_AFTER
        )
    wait = gateway.admission.take()
    if wait:
        metrics.ADMISSIONS_REFUSED.inc()
        raise Refusal.of(
            503,
            ErrorCode.UNAVAILABLE,
            detail=_TOO_MANY,
            retry_after=max(1, math.ceil(wait)),
        )
    subprotocol, version = select_subprotocol(offered)
    token = handshake_token(query, headers)
    if not token:
        return Admission(subprotocol, version, None, None)
    try:
        principal, user = await gateway.chat.authenticate(token)
    except AuthError as exc:
        log.info("handshake refused: %s", exc.detail)
        metrics.AUTH_FAILURES.labels("handshake").inc()
        raise Refusal(401, exc.payload()) from None
    return Admission(subprotocol, version, principal, user)
