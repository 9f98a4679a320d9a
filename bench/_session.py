"""One STOMP-over-WebSocket client session as an asyncio Protocol.

No coroutine per frame: bytes arrive in ``data_received``, WebSocket messages are cut out by
`WsReader`, STOMP frames by ieum-chat's own sans-IO `FrameParser`, and each frame is handed to
the `Sink` synchronously, which may answer at once (a closed-loop SEND on each RECEIPT).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, cast

from ieum_chat.stomp import HEARTBEAT, Frame, FrameParser, serialize_frame

from ._targets import Target
from ._ws import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    HandshakeError,
    WsReader,
    check_response,
    encode_frame,
    handshake_request,
)

__all__ = ["SUBPROTOCOLS", "SessionError", "Sink", "StompWsSession"]

SUBPROTOCOLS = ("v12.stomp", "v11.stomp", "v10.stomp")
_SUBSCRIBE_RECEIPT = "sub"
_TOPIC_SUB = "0"
_ERRORS_SUB = "1"
_MAX_FRAME = 1 << 20


class SessionError(Exception):
    """The session could not be opened, or the server ended it."""


class Sink(Protocol):
    def on_receipt(self, receipt_id: str, now: float) -> None: ...

    def on_message(self, body: bytes, now: float) -> None: ...

    def on_error(self, body: bytes, now: float) -> None: ...

    def on_closed(self, reason: str) -> None: ...


class StompWsSession(asyncio.Protocol):
    """WebSocket handshake, CONNECT, SUBSCRIBE to one destination (and to `errors`, when
    given); `ready` resolves on the topic SUBSCRIBE's RECEIPT. After that every RECEIPT and
    MESSAGE goes to the sink, a MESSAGE of the errors subscription to `Sink.on_error`."""

    def __init__(
        self,
        target: Target,
        token: str,
        topic: str,
        sink: Sink,
        ready: asyncio.Future[None],
        *,
        errors: str | None = None,
    ) -> None:
        self._target = target
        self._token = token
        self._topic = topic
        self._errors = errors
        self._sink = sink
        self.ready = ready
        self.transport: asyncio.Transport | None = None
        self._handshake = bytearray()
        self._key = ""
        self._open = False
        self._closing = False
        self._reader = WsReader()
        self._parser = FrameParser(max_frame_size=_MAX_FRAME, max_headers=128)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        host = f"{self._target.host}:{self._target.port}"
        request, self._key = handshake_request(host, self._target.path(self._token), SUBPROTOCOLS)
        transport.write(request)

    def data_received(self, data: bytes) -> None:
        if not self._open:
            self._handshake += data
            try:
                answer = check_response(self._handshake, self._key)
            except HandshakeError as exc:
                self._fail(str(exc))
                return
            if answer is None:
                return
            self._open = True
            self._handshake = bytearray()
            self.send_frame(Frame("CONNECT", self._target.connect_headers()))
            data = answer[1]
            if not data:
                return
        now = time.monotonic()
        parser = self._parser
        try:
            for message in self._reader.receive_data(data):
                opcode = message.opcode
                if opcode <= 2:
                    parser.receive_data(message.payload)
                    while (frame := parser.next_frame()) is not None:
                        if frame is not HEARTBEAT:
                            self._on_frame(frame, now)
                elif opcode == OP_PING:
                    self._write(OP_PONG, message.payload)
                elif opcode == OP_CLOSE:
                    code = int.from_bytes(message.payload[:2], "big") if message.payload else 1005
                    self._fail(f"server closed the WebSocket ({code} {message.payload[2:]!r})")
                    return
        except Exception as exc:  # a protocol error from the server is a failed run, not a crash
            self._fail(f"{type(exc).__name__}: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"connection lost: {exc}" if exc else "connection closed"
        if not self.ready.done():
            self.ready.set_exception(SessionError(reason))
        if not self._closing:
            self._sink.on_closed(reason)
        self.transport = None

    # frames in

    def _on_frame(self, frame: Frame, now: float) -> None:
        command = frame.command
        if command == "MESSAGE":
            if self._errors is not None and frame.get("subscription") == _ERRORS_SUB:
                self._sink.on_error(frame.body, now)
            else:
                self._sink.on_message(frame.body, now)
        elif command == "RECEIPT":
            receipt = frame.get("receipt-id", "")
            if receipt == _SUBSCRIBE_RECEIPT and not self.ready.done():
                self.ready.set_result(None)
            else:
                self._sink.on_receipt(receipt or "", now)
        elif command == "CONNECTED":
            self._parser.version = frame.get("version", "1.0") or "1.0"
            if self._errors is not None:
                # Frames are handled in order: the topic's RECEIPT follows this one's effect.
                errors = (("id", _ERRORS_SUB), ("destination", self._errors), ("ack", "auto"))
                self.send_frame(Frame("SUBSCRIBE", errors))
            subscribe = (
                ("id", _TOPIC_SUB),
                ("destination", self._topic),
                ("ack", "auto"),
                ("receipt", _SUBSCRIBE_RECEIPT),
            )
            self.send_frame(Frame("SUBSCRIBE", subscribe))
        elif command == "ERROR":
            detail = frame.body[:300].decode("utf-8", "replace")
            self._fail(f"STOMP ERROR {frame.get('message', '')!r} {detail}".strip())

    # frames out

    def send_frame(self, frame: Frame) -> None:
        self._write(OP_TEXT, serialize_frame(frame))

    def _write(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(opcode, payload))

    @property
    def buffered(self) -> int:
        """Bytes written and not yet taken by the kernel (a server that stopped reading)."""
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(SessionError(reason))
        elif not self._closing:
            self._sink.on_closed(reason)
        self._closing = True
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        """Ends the session on purpose: no `on_closed` for it."""
        self._closing = True
        if self.transport is not None:
            self.transport.close()
