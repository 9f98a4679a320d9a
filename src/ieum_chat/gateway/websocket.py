"""The raw WebSocket endpoint (``/ws/chat`` and ``/ws/chat/websocket``), a plain ASGI app.

Handshake (RFC 6455 §4.2.2): the checks of ``gateway.admission``; a refusal is answered with
its HTTP status and error JSON through the ASGI "websocket.http.response" extension when the
server has it, else with a policy-violation close.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ieum_chat.errors import ErrorCode, error_body
from ieum_chat.gateway.admission import Refusal, admit
from ieum_chat.gateway.connection import Gateway, StompConnection
from ieum_chat.gateway.transports import QueuedTransport

__all__ = ["StompWebSocketApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class StompWebSocketApp:
    """The endpoint as an ASGI app, for servers that bring their own WebSocket (the CLI's
    uvicorn serves these paths straight from the event loop: ``gateway.wsserver``)."""

    def __init__(self, gateway: Callable[[], Gateway]) -> None:
        self._gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            body = error_body(ErrorCode.BAD_REQUEST, detail="this endpoint speaks WebSocket")
            await _plain_response(send, 400, body)
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
            await _deny(scope, send, refusal.status, refusal.body)
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


async def _deny(scope: Scope, send: Send, status: int, body: bytes) -> None:
    if "websocket.http.response" in (scope.get("extensions") or {}):
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
