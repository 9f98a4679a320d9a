"""The raw WebSocket endpoint (``/ws/chat`` and ``/ws/chat/websocket``), a plain ASGI app.

Handshake (RFC 6455 §4.2.2): the STOMP subprotocol the client offers is selected, highest
version first; a token in the query string or an ``Authorization`` header is verified before
the upgrade, and a bad one is refused with HTTP 401 and the AUTH_FAILED JSON (through the ASGI
"websocket.http.response" extension when the server has it, else a 403 close). Without a
token the socket opens and the STOMP CONNECT must carry one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from ieum_chat.auth import Principal, bearer_token
from ieum_chat.chat import codec
from ieum_chat.errors import AuthError, ErrorCode, error_payload
from ieum_chat.gateway.connection import Gateway, StompConnection
from ieum_chat.gateway.transports import QueuedTransport
from ieum_chat.observability import metrics
from ieum_chat.store.records import User

__all__ = [
    "Admission",
    "Refusal",
    "StompWebSocketApp",
    "admit",
    "origin_allowed",
    "select_subprotocol",
]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

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


class StompWebSocketApp:
    """The endpoint as an ASGI app, for servers that bring their own WebSocket (the CLI's
    uvicorn serves these paths straight from the event loop: ``gateway.wsserver``)."""

    def __init__(self, gateway: Callable[[], Gateway]) -> None:
        self._gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await _plain_response(
                send,
                400,
                b'{"type":"ERROR","code":"BAD_REQUEST","message":"this endpoint speaks WebSocket"}',
            )
            return
        gateway = self._gateway()
        connect = await receive()
        if connect["type"] != "websocket.connect":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            admission = await admit(
                gateway,
                headers,
                scope.get("query_string", b"").decode("latin-1"),
                list(scope.get("subprotocols") or []),
            )
        except Refusal as refusal:
            await _deny(scope, send, refusal.status, refusal.payload)
            return
        await send({"type": "websocket.accept", "subprotocol": admission.subprotocol})
        client = scope.get("client")

        async def send_frame(frame: bytes) -> None:
            # Text frames: the plan's browser test, Postman and StompProtocolAndroid read
            # text. One STOMP frame per WebSocket message: StompProtocolAndroid parses each
            # message as exactly one frame, so frames are never coalesced.
            await send({"type": "websocket.send", "text": frame.decode("utf-8")})

        async def close() -> None:
            await send({"type": "websocket.close", "code": 1000})

        transport = QueuedTransport(send_frame, close, limit=gateway.settings.outbound_buffer_bytes)
        connection = StompConnection(
            gateway,
            transport,
            transport_name="websocket",
            principal=admission.principal,
            user=admission.user,
            preferred_version=admission.version,
            remote=f"{client[0]}:{client[1]}" if client else None,
        )

        async def receive_data() -> bytes | None:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    data = message.get("bytes")
                    if data is None:
                        data = (message.get("text") or "").encode("utf-8")
                    return bytes(data)
                if kind == "websocket.disconnect":
                    return None

        await connection.run(transport, receive_data)


async def _deny(scope: Scope, send: Send, status: int, payload: dict[str, Any]) -> None:
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = codec.dumps(payload)
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


async def _plain_response(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
