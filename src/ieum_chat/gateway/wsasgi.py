"""An ASGI WebSocket served on the event-loop WebSocket core.

SockJS's websocket transport (``/ws/chat/<server>/<session>/websocket``) is an ASGI app. Rather
than a second RFC 6455 implementation for it (the HTTP server's own WebSocket), the
:class:`~ieum_chat.gateway.wsserver.GatewayProtocol` that answers the upgrade runs the app over
the same :class:`~ieum_chat.websocket.Connection` as the STOMP endpoint, with the same bounds:

- inbound, the app holds at most the messages of one parsing turn: while any wait in
  :meth:`AsgiWebSocket.receive`, the socket is not read;
- outbound, ``websocket.send`` waits while the connection's backlog is over
  ``IEUM_OUTBOUND_BUFFER_BYTES`` (the ASGI back-pressure: the app's own queues are bounded).

The ASGI messages are those of the ASGI WebSocket spec 2.4, with the
``websocket.http.response`` extension (a refused handshake gets an HTTP response).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from ieum_chat.websocket import BinaryMessage, TextMessage

__all__ = ["AsgiWebSocket", "Shell"]

log = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
App = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[Message]],
        Callable[[Message], Awaitable[None]],
    ],
    Awaitable[None],
]


class Shell(Protocol):
    """What the socket's protocol does for the app."""

    def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        """Write the 101 (extra ``headers`` of ``websocket.accept`` are not sent)."""

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None: ...

    async def send_message(self, data: bytes, *, text: bool) -> None: ...

    def close_with(self, code: int, reason: str) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class AsgiWebSocket:
    """One upgraded request handed to an ASGI app: ``receive``/``send`` over the shell."""

    __slots__ = (
        "_accepted",
        "_connect_sent",
        "_done",
        "_inbox",
        "_response",
        "_shell",
        "_wake",
        "closing",
    )

    def __init__(self, shell: Shell) -> None:
        self._shell = shell
        self._inbox: deque[Message] = deque()
        self._wake = asyncio.Event()
        self._connect_sent = False
        self._accepted = False
        self._done = False  # closed, refused or disconnected: nothing more is sent
        self._response: tuple[int, list[tuple[bytes, bytes]], list[bytes]] | None = None
        self.closing = False

    async def run(self, app: App, scope: MutableMapping[str, Any]) -> None:
        """Run the app to its end, then close what it left open (1011 after a crash, as
        uvicorn does; a refusal never answered gets a 500)."""
        failed = False
        try:
            await app(scope, self.receive, self.send)
        except Exception:
            log.exception("WebSocket app failed on %s", scope.get("path"))
            failed = True
        if self._done:
            return
        self._done = True
        if self._accepted:
            self._shell.close_with(1011 if failed else 1000, "")
        else:
            self._shell.respond(500, [], b"")

    # -- from the socket ----------------------------------------------------------------------

    def feed(self, event: TextMessage | BinaryMessage) -> None:
        if self._done:
            return
        if type(event) is TextMessage:
            self._inbox.append({"type": "websocket.receive", "text": event.data.decode()})
        else:
            self._inbox.append({"type": "websocket.receive", "bytes": event.data})
        self._shell.pause_reading()  # until the app has taken it
        self._wake.set()

    def connection_lost(self, code: int | None) -> None:
        if self.closing:
            return
        self.closing = True
        self._done = True
        self._inbox.append({"type": "websocket.disconnect", "code": code or 1006})
        self._wake.set()

    # -- ASGI ------------------------------------------------------------------------------------

    async def receive(self) -> Message:
        if not self._connect_sent:
            self._connect_sent = True
            return {"type": "websocket.connect"}
        inbox = self._inbox
        while not inbox:
            if self.closing:  # asked again after the disconnect: the same answer
                return {"type": "websocket.disconnect", "code": 1006}
            self._wake.clear()
            await self._wake.wait()
        message = inbox.popleft()
        if not inbox and not self.closing:
            self._shell.resume_reading()
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self._done and kind != "websocket.close":
            raise OSError("the WebSocket is closed")
        if kind == "websocket.send":
            text = message.get("text")
            if text is not None:
                await self._shell.send_message(str(text).encode(), text=True)
            else:
                await self._shell.send_message(bytes(message.get("bytes") or b""), text=False)
        elif kind == "websocket.accept" and not self._accepted and self._response is None:
            self._accepted = True
            self._shell.accept(message.get("subprotocol"), list(message.get("headers") or ()))
        elif kind == "websocket.close":
            if self._done:
                return
            self._done = True
            if self._accepted:
                self._shell.close_with(
                    int(message.get("code") or 1000), message.get("reason") or ""
                )
            else:
                self._shell.respond(403, [], b"")
        elif kind == "websocket.http.response.start" and not self._accepted:
            self._response = (int(message["status"]), list(message.get("headers") or ()), [])
        elif kind == "websocket.http.response.body" and self._response is not None:
            status, headers, body = self._response
            body.append(bytes(message.get("body") or b""))
            if not message.get("more_body"):
                self._done = True
                self._shell.respond(status, headers, b"".join(body))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
