"""The raw WebSocket endpoint (``/ws/chat`` and ``/ws/chat/websocket``), a plain ASGI app.

Handshake (RFC 6455 §4.2.2): the STOMP subprotocol the client offers is selected, highest
version first; a token in the query string or an ``Authorization`` header is verified before
the upgrade, and a bad one is refused with HTTP 401 and the AUTH_FAILED JSON (through the ASGI
"websocket.http.response" extension when the server has it, else a 403 close). Without a
token the socket opens and the STOMP CONNECT must carry one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from ieum_chat.auth import Principal, bearer_token
from ieum_chat.chat import codec
from ieum_chat.errors import AuthError, ErrorCode, error_payload
from ieum_chat.gateway.connection import Gateway, StompConnection
from ieum_chat.observability import metrics
from ieum_chat.store.records import User

__all__ = ["StompWebSocketApp", "origin_allowed", "select_subprotocol"]

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


class _WebSocketTransport:
    __slots__ = ("_send",)

    def __init__(self, send: Send) -> None:
        self._send = send

    async def send(self, frame: bytes) -> None:
        # Text frames: the plan's browser test, Postman and StompProtocolAndroid read text.
        # One STOMP frame per WebSocket message: StompProtocolAndroid parses each message as
        # exactly one frame, so frames are never coalesced into one message.
        await self._send({"type": "websocket.send", "text": frame.decode("utf-8")})

    async def close(self, code: int, reason: str) -> None:
        await self._send({"type": "websocket.close", "code": code, "reason": reason[:120]})


class StompWebSocketApp:
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
        if not gateway.accepting:
            await _deny(scope, send, 503, error_payload(ErrorCode.SERVER_SHUTDOWN))
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not origin_allowed(headers.get("origin"), gateway.settings.allowed_origins):
            await _deny(
                scope,
                send,
                403,
                {"type": "ERROR", "code": "UNAUTHORIZED", "message": "origin not allowed"},
            )
            return
        subprotocol, version = select_subprotocol(list(scope.get("subprotocols") or []))
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        token = (query.get("token") or [None])[0] or bearer_token(headers.get("authorization"))
        principal: Principal | None = None
        user: User | None = None
        if token:
            try:
                principal, user = await gateway.chat.authenticate(token)
            except AuthError as exc:
                log.info("handshake refused: %s", exc.detail)
                metrics.AUTH_FAILURES.labels("handshake").inc()
                await _deny(scope, send, 401, exc.payload())
                return
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        client = scope.get("client")
        connection = StompConnection(
            gateway,
            _WebSocketTransport(send),
            transport_name="websocket",
            principal=principal,
            user=user,
            preferred_version=version,
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

        await connection.run(receive_data)


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
