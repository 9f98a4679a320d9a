"""The admission of the raw WebSocket endpoint (``/ws/chat`` and ``/ws/chat/websocket``).

Handshake (RFC 6455 §4.2.2): the STOMP subprotocol the client offers is selected, highest
version first; a token in the query string or an ``Authorization`` header is verified before
the upgrade, and a bad one is refused with HTTP 401 and the AUTH_FAILED JSON. Without a token
the socket opens and the STOMP CONNECT must carry one. The socket itself is served from the
event loop by ``gateway.wsserver``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from ieum_chat.auth import Principal, bearer_token
from ieum_chat.errors import AuthError, ErrorCode, error_payload
from ieum_chat.gateway.connection import Gateway
from ieum_chat.observability import metrics
from ieum_chat.store.records import User

__all__ = [
    "Admission",
    "Refusal",
    "admit",
    "origin_allowed",
    "select_subprotocol",
]

log = logging.getLogger(__name__)


# Highest first: the server picks the best version the client offers.
_SUBPROTOCOLS = (("v12.stomp", "1.2"), ("v11.stomp", "1.1"), ("v10.stomp", "1.0"))


def select_subprotocol(offered: list[str]) -> tuple[str | None, str | None]:
    """(subprotocol to select, STOMP version it implies)."""
    for name, version in _SUBPROTOCOLS:
        if name in offered:
            return name, version
    return None, None


def origin_allowed(origin: str | None, allowed: list[str]) -> bool:
    return origin is None or "*" in allowed or origin in allowed


@dataclass(frozen=True, slots=True)
class Admission:
    """A handshake let through: the subprotocol to select and who, if the token came with it."""

    subprotocol: str | None
    version: str | None
    principal: Principal | None
    user: User | None


class Refusal(Exception):
    """A handshake refused with an HTTP status and a JSON error body."""

    def __init__(self, status: int, payload: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.payload = payload


async def admit(
    gateway: Gateway, headers: Mapping[str, str], query: str, offered: list[str]
) -> Admission:
    """The checks of every WebSocket handshake (``headers`` by lower-case name): draining,
    origin, then the token of the query string or an ``Authorization`` header, verified
    before the upgrade. Without a token the socket opens and CONNECT must carry one."""
    if not gateway.accepting:
        raise Refusal(503, error_payload(ErrorCode.SERVER_SHUTDOWN))
    if not origin_allowed(headers.get("origin"), gateway.settings.allowed_origins):
        refused = {"type": "ERROR", "code": "UNAUTHORIZED", "message": "origin not allowed"}
        raise Refusal(403, refused)
    subprotocol, version = select_subprotocol(offered)
    token = next(iter(parse_qs(query).get("token", ())), None)
    token = token or bearer_token(headers.get("authorization"))
    principal: Principal | None = None
    user: User | None = None
    if token:
        try:
            principal, user = await gateway.chat.authenticate(token)
        except AuthError as exc:
            log.info("handshake refused: %s", exc.detail)
            metrics.AUTH_FAILURES.labels("handshake").inc()
            raise Refusal(401, exc.payload()) from None
    return Admission(subprotocol, version, principal, user)
