"""The STOMP WebSocket endpoints served straight from the event loop.

The server hands every accepted TCP connection to a :class:`GatewayProtocol` (uvicorn takes it
as its ``http`` protocol class, see :class:`GatewayProtocolFactory`). A request for
``/ws/chat`` or ``/ws/chat/websocket`` that asks for a WebSocket is answered here: the RFC 6455
core (``ieum_chat.websocket``) turns socket bytes into messages that go straight into a
:class:`StompConnection`, and frames go straight back to the socket, with no ASGI message,
task or queue per connection in between. Every other request (REST, SockJS, the demo page, a
plain GET of the endpoint) is handed, with the bytes read so far, to the server's own HTTP
protocol, which serves the ASGI app as usual.

Frames written during one turn of the event loop go to the socket together at its end, one
system call per socket however many frames (a sender's RECEIPT and its own copy of the
message, a burst of replayed history). Each STOMP frame is still its own WebSocket message:
StompProtocolAndroid reads each message as exactly one frame. Past the transport's high-water
mark (``pause_writing``) frames wait here, bounded by ``IEUM_OUTBOUND_BUFFER_BYTES``, and a
session past that bound is closed as a slow consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from ieum_chat.chat import codec
from ieum_chat.errors import ErrorCode, error_body, error_payload
from ieum_chat.gateway.admission import Refusal, admit
from ieum_chat.gateway.connection import Gateway, StompConnection
from ieum_chat.websocket import (
    BinaryMessage,
    CloseCode,
    CloseReceived,
    FrameParser,
    HandshakeError,
    Ping,
    ProtocolError,
    TextMessage,
    UpgradeRequest,
    accept_response,
    close_frame,
    head_length,
    http_response,
    parse_request,
    pong_frame,
    text_frame,
    validate_upgrade,
)

__all__ = ["WS_PATHS", "GatewayProtocol", "GatewayProtocolFactory"]

log = logging.getLogger(__name__)

WS_PATHS = frozenset({"/ws/chat", "/ws/chat/websocket"})
# Request lines this protocol serves itself; anything else is handed off at the first byte
# that differs from all of them.
_OURS = tuple(f"GET {path}{end}".encode() for path in sorted(WS_PATHS) for end in (" ", "?"))
# After our Close frame, how long the peer has to answer with its own (RFC 6455 §7.1.1)
# and to take what is still queued for it, before the TCP connection is cut.
CLOSE_GRACE = 5.0


class _State(enum.Enum):
    REQUEST = "request"  # reading the request head
    HANDSHAKE = "handshake"  # checking the token
    OPEN = "open"
    CLOSING = "closing"  # our Close frame queued or sent; waiting for the peer's
    FAILED = "failed"  # a protocol error: Close sent, reading on (and dropping) until EOF
    CLOSED = "closed"
    HANDED_OFF = "handed-off"


class GatewayProtocolFactory:
    """What uvicorn calls for each connection, with its own protocol's arguments.

    ``fallback`` is the HTTP protocol class that serves everything but our WebSocket
    endpoints; it is built with the same arguments when a connection is handed to it."""

    def __init__(
        self, gateway: Callable[[], Gateway | None], fallback: Callable[..., asyncio.Protocol]
    ) -> None:
        self.gateway = gateway
        self.fallback = fallback
        self.flusher = _Flusher()
        self._kwargs: dict[str, Any] = {}

    def __call__(self, **kwargs: Any) -> GatewayProtocol:
        # The same arguments for every connection of one server: kept here, not per connection.
        self._kwargs = kwargs
        return GatewayProtocol(self)

    def hand_off(self) -> asyncio.Protocol:
        return self.fallback(**self._kwargs)


class _Flusher:
    """Writes every socket's frames of this loop turn once, at the end of the turn."""

    __slots__ = ("_dirty",)

    def __init__(self) -> None:
        self._dirty: list[GatewayProtocol] = []

    def mark(self, protocol: GatewayProtocol) -> None:
        if not self._dirty:
            asyncio.get_running_loop().call_soon(self._flush)
        self._dirty.append(protocol)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for protocol in dirty:
            protocol.flush()


class GatewayProtocol(asyncio.Protocol):
    # Slots: one of these lives as long as each WebSocket, and there are thousands.
    __slots__ = (
        "_buffer",
        "_close_sent",
        "_conn",
        "_deadline",
        "_factory",
        "_limit",
        "_outq",
        "_outq_bytes",
        "_parser",
        "_pending",
        "_state",
        "_transport",
        "_write_paused",
    )

    def __init__(self, factory: GatewayProtocolFactory) -> None:
        self._factory = factory
        self._state = _State.REQUEST
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._parser: FrameParser | None = None
        self._conn: StompConnection | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._write_paused = False
        self._outq: deque[bytes] | None = None
        self._outq_bytes = 0
        self._pending: list[bytes] | None = None  # this loop turn's frames
        self._limit = 0
        self._close_sent = False

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass
        gateway = self._factory.gateway()
        timeout = gateway.settings.connect_timeout if gateway is not None else 10.0
        self._deadline = asyncio.get_running_loop().call_later(timeout, self._abort)

    def data_received(self, data: bytes) -> None:
        state = self._state
        if state is _State.OPEN or state is _State.CLOSING:
            self._on_frames(data)
        elif state is _State.REQUEST:
            self._on_request(self._buffer + data if self._buffer else data)
        elif state is _State.HANDSHAKE:
            # A client may send its first frames right behind the handshake.
            self._buffer += data
            if len(self._buffer) > 4 * 65536:
                self._abort()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._state = _State.CLOSED
        self._cancel_deadline()
        if self._conn is not None:
            self._conn.connection_lost()
        self._outq = None
        self._outq_bytes = 0

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._outq is None:
            self._outq = deque()

    def resume_writing(self) -> None:
        self._write_paused = False
        queue = self._outq
        transport = self._transport
        assert transport is not None
        while queue and not self._write_paused:
            data = queue.popleft()
            self._outq_bytes -= len(data)
            transport.write(data)
        if self._state is _State.CLOSING and not queue and not self._close_sent:
            self._send_close(CloseCode.NORMAL)

    # -- the request --------------------------------------------------------------------

    def _on_request(self, buffer: bytes) -> None:
        ours = _is_ours(buffer)
        if ours is None:
            self._buffer = buffer
            return
        if not ours:
            self._hand_off(buffer)
            return
        try:
            end = head_length(buffer)
            if end is None:
                self._buffer = buffer
                return
            request = parse_request(buffer[:end])
            if not request.is_upgrade:
                self._hand_off(buffer)  # a plain GET: the ASGI endpoint explains
                return
            key = validate_upgrade(request)
        except HandshakeError as exc:
            body = error_body(ErrorCode.BAD_REQUEST, detail=exc.message)
            self._respond(exc.status, body, exc.headers)
            return
        self._buffer = buffer[end:]
        self._state = _State.HANDSHAKE
        assert self._transport is not None
        self._transport.pause_reading()
        gateway = self._factory.gateway()
        if gateway is None:
            self._respond(503, codec.dumps(error_payload(ErrorCode.SERVER_SHUTDOWN)))
            return
        gateway.spawn(self._handshake(gateway, request, key))

    def _hand_off(self, buffer: bytes) -> None:
        transport = self._transport
        assert transport is not None
        self._cancel_deadline()
        self._state = _State.HANDED_OFF
        protocol = self._factory.hand_off()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(buffer)

    async def _handshake(self, gateway: Gateway, request: UpgradeRequest, key: str) -> None:
        headers: dict[str, str] = {}
        for name, value in request.headers:
            headers.setdefault(name, value)
        peer = self._transport.get_extra_info("peername") if self._transport else None
        remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "-"
        try:
            admission = await admit(gateway, headers, request.query, request.subprotocols)
        except Refusal as refusal:
            # An access-log line as the HTTP server writes one (the token in it is redacted).
            log.info('%s - "WebSocket %s" %d', remote, request.target, refusal.status)
            self._respond(refusal.status, codec.dumps(refusal.payload))
            return
        except Exception:
            log.exception("WebSocket handshake failed")
            self._respond(503, error_body(ErrorCode.UNAVAILABLE, detail="try again"))
            return
        transport = self._transport
        if self._state is not _State.HANDSHAKE or transport is None:
            return  # the peer went away meanwhile
        self._cancel_deadline()
        log.info('%s - "WebSocket %s" [accepted]', remote, request.target)
        transport.write(accept_response(key, admission.subprotocol))
        settings = gateway.settings
        self._limit = settings.outbound_buffer_bytes
        # Above the STOMP limit, so an oversized frame reaches the STOMP parser (an ERROR).
        self._parser = FrameParser(max_message_size=settings.max_frame_size * 4)
        self._conn = StompConnection(
            gateway,
            self,
            transport_name="websocket",
            principal=admission.principal,
            user=admission.user,
            preferred_version=admission.version,
            remote=remote,
        )
        self._state = _State.OPEN
        self._conn.open()
        transport.resume_reading()
        early, self._buffer = self._buffer, b""
        if early:
            self._on_frames(early)

    def _respond(self, status: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self._cancel_deadline()
        self._state = _State.CLOSED
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(http_response(status, body, headers=headers))
            self._transport.close()

    # -- frames ---------------------------------------------------------------------------

    def _on_frames(self, data: bytes) -> None:
        parser = self._parser
        conn = self._conn
        assert parser is not None
        assert conn is not None
        parser.receive_data(data)
        while True:
            try:
                event = parser.next_event()
            except ProtocolError as exc:
                log.info("session %s: WebSocket protocol error: %s", conn.session_id, exc.message)
                self._fail(exc.code, exc.message)
                return
            if event is None:
                return
            kind = type(event)
            if kind is TextMessage or kind is BinaryMessage:
                if self._state is _State.OPEN:
                    assert isinstance(event, TextMessage | BinaryMessage)
                    conn.feed(event.data)
            elif kind is Ping:
                assert isinstance(event, Ping)
                self._raw_write(pong_frame(event.payload))
            elif kind is CloseReceived:
                assert isinstance(event, CloseReceived)
                self._on_close_received(event)
                return

    def _on_close_received(self, event: CloseReceived) -> None:
        # §5.5.1: answer a Close with a Close (echoing its code), then close the connection.
        if not self._close_sent:
            self._close_sent = True
            self._raw_write(close_frame(event.code))
        self._state = _State.CLOSING
        if self._transport is not None:
            self._transport.close()

    def _fail(self, code: int, reason: str) -> None:
        """_Fail the WebSocket Connection_ (RFC 6455 §7.1.7): a Close with the error's code,
        then our half of the TCP connection closes without waiting for the peer's Close.
        What the peer still sends is read and dropped (closing with unread bytes would
        reset the connection, and the peer might lose the Close) until it closes too."""
        if self._outq:
            self._outq.clear()
            self._outq_bytes = 0
        if self._conn is not None and not self._conn.closing:
            self._conn.connection_lost()
        self._start_closing()
        self._state = _State.FAILED
        if not self._close_sent:
            self._send_close(code, reason)
        if self._transport is not None and self._transport.can_write_eof():
            self._transport.write_eof()

    def _raw_write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self.flush()
            self._transport.write(data)

    # -- Transport, for the StompConnection -----------------------------------------------

    def write(self, frame: bytes) -> bool:
        if self._state is not _State.OPEN:
            return True
        data = text_frame(frame)
        if self._write_paused:
            queue = self._outq
            assert queue is not None
            if queue and self._outq_bytes + len(data) > self._limit:
                return False
            queue.append(data)
            self._outq_bytes += len(data)
        elif self._pending is None:
            self._pending = [data]
            self._factory.flusher.mark(self)
        else:
            self._pending.append(data)
        return True

    def flush(self) -> None:
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        if self._state is not _State.OPEN:
            return
        self._start_closing()
        if not self._outq:
            self._send_close(CloseCode.NORMAL)
        # else resume_writing sends the Close once the queue is out

    def discard(self) -> None:
        if self._outq:
            self._outq.clear()
            self._outq_bytes = 0

    def backlog(self) -> int:
        transport = self._transport
        if transport is None or transport.is_closing():
            return self._outq_bytes
        return transport.get_write_buffer_size() + self._outq_bytes

    def pause_reading(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._state is _State.OPEN and self._transport is not None:
            with contextlib.suppress(RuntimeError):
                self._transport.resume_reading()

    # -- closing --------------------------------------------------------------------------

    def _start_closing(self) -> None:
        self._state = _State.CLOSING
        self._cancel_deadline()
        self._deadline = asyncio.get_running_loop().call_later(CLOSE_GRACE, self._abort)
        # Read on: the peer's Close frame ends the connection (frames before it are dropped).
        if self._transport is not None:
            with contextlib.suppress(RuntimeError):
                self._transport.resume_reading()

    def _send_close(self, code: int, reason: str = "") -> None:
        self._close_sent = True
        self._raw_write(close_frame(code, reason))

    def _abort(self) -> None:
        self._deadline = None
        if self._transport is not None:
            self._transport.abort()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def _is_ours(buffer: bytes) -> bool | None:
    """Whether the request line is a GET of one of our paths (None: too short to tell)."""
    undecided = False
    for line in _OURS:
        if buffer.startswith(line):
            return True
        if len(buffer) < len(line) and line.startswith(buffer):
            undecided = True
    return None if undecided else False
