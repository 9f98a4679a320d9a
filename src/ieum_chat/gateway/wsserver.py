"""Every WebSocket of the server, served straight from the event loop.

The server hands every accepted TCP connection to a :class:`GatewayProtocol` (uvicorn takes
the factory in ``gateway.handoff`` as its ``http`` protocol class). A request for
``/ws/chat`` or ``/ws/chat/websocket`` that asks for a WebSocket is answered here: the sans-IO
RFC 6455 :class:`~ieum_chat.websocket.Connection` turns socket bytes into messages that go
straight into a :class:`StompConnection`, and frames go straight back to the socket, with no
ASGI message, task or queue per connection in between. A WebSocket asked for on any other path
under ``/ws/chat/`` (SockJS's websocket transport) runs the ASGI app over the same Connection
(``gateway.wsasgi``). Every other request (REST, SockJS's HTTP transports, the demo page, a
plain GET of the endpoint) is handed, with the bytes read so far, to the server's own HTTP
protocol, which serves the ASGI app as usual: that hand-off (:meth:`GatewayProtocol._hand_off`
and :mod:`ieum_chat.gateway.handoff`) is the one place that knows uvicorn, and
test_wsserver pins what it relies on. A handshake that arrives later on a connection already
handed off (a proxy such as nginx reuses its keep-alive connections for upgrades) comes back:
the factory is uvicorn's WebSocket protocol class too (``GatewayProtocolFactory.upgrade``),
so such a connection is served by the same core and never handed off again.

This module only moves bytes and schedules: the WebSocket connection decides what to answer,
when reading must stop (its outbound backlog over ``IEUM_OUTBOUND_BUFFER_BYTES``, or its
per-turn parsing bound reached) and when the close deadline has passed.

Frames written during one turn of the event loop go to the socket together at its end, one
system call per socket however many frames (a sender's RECEIPT and its own copy of the
message, a burst of replayed history). Each STOMP frame is still its own WebSocket message:
StompProtocolAndroid reads each message as exactly one frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

from ieum_chat.chat import codec
from ieum_chat.errors import ErrorCode, error_body, error_payload
from ieum_chat.gateway.admission import Refusal, admit
from ieum_chat.gateway.connection import Gateway, StompConnection
from ieum_chat.gateway.wsasgi import AsgiWebSocket
from ieum_chat.websocket import (
    BinaryMessage,
    CloseCode,
    Connection,
    HandshakeError,
    State,
    TextMessage,
    UpgradeRequest,
    accept_response,
    head_length,
    http_response,
    parse_request,
    validate_upgrade,
)

if TYPE_CHECKING:
    from ieum_chat.gateway.handoff import GatewayProtocolFactory

__all__ = ["WS_PATHS", "Flusher", "GatewayProtocol"]

log = logging.getLogger(__name__)

WS_PATHS = frozenset({"/ws/chat", "/ws/chat/websocket"})
# Request lines whose head this protocol reads: the STOMP endpoints, and every path under them
# (SockJS), whose WebSocket upgrades are served here too, through the ASGI app. Anything else
# is handed off at the first byte that differs from all of them.
_OURS = (b"GET /ws/chat ", b"GET /ws/chat?", b"GET /ws/chat/")
# After our Close frame, how long the peer has to answer with its own (RFC 6455 §7.1.1)
# and to take what is still queued for it, before the TCP connection is cut.
CLOSE_GRACE = 5.0
# Bytes a client may send right behind its handshake, before the token check has answered.
_EARLY_LIMIT = 4 * 65536


class _Phase(enum.Enum):
    REQUEST = "request"  # reading the request head
    HANDSHAKE = "handshake"  # checking the token
    WEBSOCKET = "websocket"
    CLOSED = "closed"
    HANDED_OFF = "handed-off"


class Flusher:
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
        "_app",
        "_buffer",
        "_conn",
        "_deadline",
        "_deadline_at",
        "_dirty",
        "_drained",
        "_eof_written",
        "_factory",
        "_from_http",
        "_key",
        "_next_turn",
        "_paused",
        "_phase",
        "_reading",
        "_transport",
        "_ws",
    )

    def __init__(self, factory: GatewayProtocolFactory, *, from_http: bool = False) -> None:
        self._factory = factory
        # Given back by the HTTP server for a handshake: whatever it is, it is answered here
        # (handing it off again would come straight back).
        self._from_http = from_http
        self._phase = _Phase.REQUEST
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._ws: Connection | None = None
        self._conn: StompConnection | None = None
        self._app: AsgiWebSocket | None = None
        self._key = ""  # Sec-WebSocket-Key, while an ASGI app decides on the upgrade
        self._drained: asyncio.Event | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_at: float | None = None
        self._dirty = False  # marked with the flusher for this loop turn
        self._next_turn: asyncio.Handle | None = None  # parsing resumes on a later turn
        self._reading = True
        self._paused = False  # by the STOMP connection or the ASGI app
        self._eof_written = False

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass
        gateway = self._factory.gateway()
        timeout = gateway.settings.connect_timeout if gateway is not None else 10.0
        self._deadline = asyncio.get_running_loop().call_later(timeout, self._abort)

    def data_received(self, data: bytes) -> None:
        phase = self._phase
        if phase is _Phase.WEBSOCKET:
            ws = self._ws
            assert ws is not None
            ws.receive_data(data)
            self._turn()
        elif phase is _Phase.REQUEST:
            self._on_request(self._buffer + data if self._buffer else data)
        elif phase is _Phase.HANDSHAKE:
            # A client may send its first frames right behind the handshake.
            self._buffer += data
            if len(self._buffer) > _EARLY_LIMIT:
                self._abort()

    def eof_received(self) -> bool | None:
        if self._ws is not None:
            self._ws.receive_eof()
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = _Phase.CLOSED
        self._cancel_deadline()
        if self._next_turn is not None:
            self._next_turn.cancel()
            self._next_turn = None
        if self._conn is not None:
            self._conn.connection_lost()
        if self._app is not None:
            self._app.connection_lost(self._ws.close_code if self._ws is not None else None)
        if self._ws is not None:
            self._ws.receive_eof()
            self._ws.discard()
        if self._drained is not None:
            self._drained.set()

    def pause_writing(self) -> None:
        """Nothing to stop: the WebSocket connection counts what the transport holds."""

    def resume_writing(self) -> None:
        # The transport's buffer is below its low-water mark: a waiting Pong may go, and
        # reading may resume.
        if self._ws is not None:
            self.flush()

    # -- the request --------------------------------------------------------------------

    def _on_request(self, buffer: bytes) -> None:
        ours = _is_ours(buffer)
        if ours is None:
            self._buffer = buffer
            return
        if not ours:
            self._hand_off_or_refuse(buffer)
            return
        stomp = _request_path(buffer) in WS_PATHS
        try:
            end = head_length(buffer)
            if end is None:
                self._buffer = buffer
                return
            request = parse_request(buffer[:end])
            if not request.is_upgrade:
                self._hand_off_or_refuse(buffer)  # a plain GET: the ASGI app answers
                return
            key = validate_upgrade(request)
        except HandshakeError as exc:
            if not stomp and not _upgrade_asked(buffer) and not self._from_http:
                self._hand_off(buffer)  # a request for the HTTP server to judge
                return
            body = error_body(ErrorCode.BAD_REQUEST, detail=exc.message)
            self._respond(exc.status, body, exc.headers)
            return
        self._buffer = buffer[end:]
        self._phase = _Phase.HANDSHAKE
        assert self._transport is not None
        self._transport.pause_reading()
        self._reading = False
        gateway = self._factory.gateway()
        asgi = self._factory.asgi()
        if gateway is None or (not stomp and asgi is None):
            self._respond(503, codec.dumps(error_payload(ErrorCode.SERVER_SHUTDOWN)))
            return
        if stomp:
            gateway.spawn(self._handshake(gateway, request, key))
            return
        assert asgi is not None
        app, state = asgi
        self._key = key
        self._app = AsgiWebSocket(self)
        self._factory.spawn(self._app.run(app, self._scope(request, state)))

    def _hand_off_or_refuse(self, buffer: bytes) -> None:
        if self._from_http:
            self._respond(404, error_body(ErrorCode.NOT_FOUND, detail="no WebSocket endpoint here"))
        else:
            self._hand_off(buffer)

    def _hand_off(self, buffer: bytes) -> None:
        """Every request that is not one of our upgrades goes, with the bytes read so far,
        to the server's own HTTP protocol (uvicorn's, built with uvicorn's own arguments)."""
        transport = self._transport
        assert transport is not None
        self._cancel_deadline()
        self._phase = _Phase.HANDED_OFF
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
            self._respond(refusal.status, codec.dumps(refusal.payload), refusal.headers)
            return
        except Exception:
            log.exception("WebSocket handshake failed")
            self._respond(503, error_body(ErrorCode.UNAVAILABLE, detail="try again"))
            return
        transport = self._transport
        if self._phase is not _Phase.HANDSHAKE or transport is None:
            return  # the peer went away meanwhile
        self._cancel_deadline()
        log.info('%s - "WebSocket %s" [accepted]', remote, request.target)
        transport.write(accept_response(key, admission.subprotocol))
        self._conn = StompConnection(
            gateway,
            self,
            transport_name="websocket",
            principal=admission.principal,
            user=admission.user,
            preferred_version=admission.version,
        )
        self._open(gateway)

    def _open(self, gateway: Gateway) -> None:
        """The 101 is written: frames from now on, starting with any sent behind the head."""
        self._ws = Connection(
            max_message_size=gateway.ws_message_limit,
            outbound_limit=gateway.settings.outbound_buffer_bytes,
            close_timeout=CLOSE_GRACE,
        )
        self._phase = _Phase.WEBSOCKET
        if self._conn is not None:
            self._conn.open()
        early, self._buffer = self._buffer, b""
        if early:
            self._ws.receive_data(early)
            self._turn()
        else:
            self._update_reading()

    def _respond(self, status: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self._cancel_deadline()
        self._phase = _Phase.CLOSED
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(http_response(status, body, headers=headers))
            self._transport.close()

    # -- the WebSocket ------------------------------------------------------------------------

    def _turn(self) -> None:
        """Parse what one turn of the loop may (the connection bounds it), hand the messages
        to their consumer (STOMP, or the ASGI app), and decide whether to read on."""
        self._next_turn = None
        ws = self._ws
        conn = self._conn
        assert ws is not None
        was_failed = ws.eof_wanted
        app = self._app
        for event in ws.events_received(asyncio.get_running_loop().time()):
            kind = type(event)
            if kind is TextMessage or kind is BinaryMessage:
                assert isinstance(event, TextMessage | BinaryMessage)
                if app is not None:
                    app.feed(event)
                elif conn is not None:
                    conn.feed(event.data)
        if ws.eof_wanted and not was_failed:
            log.info("WebSocket failed with %s", ws.close_code)
            if conn is not None and not conn.closing:
                conn.connection_lost()
            if app is not None:
                app.connection_lost(ws.close_code)
        self._mark()
        self._update_reading()

    def _later_turn(self) -> None:
        self._next_turn = None
        ws = self._ws
        if ws is not None and self._phase is _Phase.WEBSOCKET and not self._held(ws):
            self._turn()

    def _held(self, ws: Connection) -> bool:
        """Whether input waits: while open, for the peer to take our backlog and for the
        consumer (a STOMP frame that waits for the database, messages the app has not taken)."""
        return ws.state is State.OPEN and (ws.congested or self._paused)

    def _mark(self) -> None:
        if not self._dirty:
            self._dirty = True
            self._factory.flusher.mark(self)

    def flush(self) -> None:
        """Write what the connection has for the peer, then act on its state."""
        self._dirty = False
        ws = self._ws
        transport = self._transport
        if ws is None or transport is None or transport.is_closing():
            return
        data = ws.data_to_send()
        if data:
            transport.write(data)
        ws.set_transport_backlog(transport.get_write_buffer_size())
        if ws.aborted:
            transport.abort()
            return
        if ws.state is State.CLOSED:
            transport.close()  # after what is written (§7.1.1: the server closes first)
            return
        if ws.eof_wanted and not self._eof_written:
            self._eof_written = True
            if transport.can_write_eof():
                transport.write_eof()
        self._sync_deadline()
        if self._drained is not None and not ws.congested:
            self._drained.set()
        self._update_reading()

    def _update_reading(self) -> None:
        ws = self._ws
        transport = self._transport
        if ws is None or transport is None or transport.is_closing():
            return
        pending = ws.input_pending
        # Once closing, reading goes on for the peer's Close and nothing is answered.
        held = self._held(ws)
        read = not (pending or held)
        if pending and not held and self._next_turn is None:
            self._next_turn = asyncio.get_running_loop().call_soon(self._later_turn)
        if read != self._reading:
            self._reading = read
            with contextlib.suppress(RuntimeError):
                if read:
                    transport.resume_reading()
                else:
                    transport.pause_reading()

    # -- Transport, for the StompConnection -----------------------------------------------

    def write(self, frame: bytes) -> bool:
        ws = self._ws
        if ws is None:
            return True
        if ws.backlog and self._transport is not None:
            ws.set_transport_backlog(self._transport.get_write_buffer_size())
        accepted = ws.send_text(frame)
        self._mark()
        return accepted

    def close(self) -> None:
        ws = self._ws
        if ws is None or ws.state is not State.OPEN:
            return
        ws.send_close(asyncio.get_running_loop().time())
        self._mark()

    def discard(self) -> None:
        if self._ws is not None:
            self._ws.discard()

    def backlog(self) -> int:
        ws = self._ws
        if ws is None:
            return 0
        transport = self._transport
        if transport is not None and not transport.is_closing():
            ws.set_transport_backlog(transport.get_write_buffer_size())
        return ws.backlog

    def pause_reading(self) -> None:
        self._paused = True
        self._update_reading()

    def resume_reading(self) -> None:
        self._paused = False
        self._update_reading()

    # -- Shell, for an ASGI app ------------------------------------------------------------

    def _scope(self, request: UpgradeRequest, state: dict[str, Any]) -> MutableMapping[str, Any]:
        transport = self._transport
        assert transport is not None
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        return {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": request.http_version,
            "scheme": "ws",
            "server": tuple(local[:2]) if isinstance(local, tuple) else None,
            "client": tuple(peer[:2]) if isinstance(peer, tuple) else None,
            "root_path": "",
            "path": unquote(request.path),
            "raw_path": request.path.encode("ascii"),
            "query_string": request.query.encode("ascii"),
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers],
            "subprotocols": request.subprotocols,
            "state": state,
            "extensions": {"websocket.http.response": {}},
        }

    def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        transport = self._transport
        gateway = self._factory.gateway()
        if self._phase is not _Phase.HANDSHAKE or transport is None or gateway is None:
            return
        self._cancel_deadline()
        transport.write(accept_response(self._key, subprotocol))
        self._open(gateway)

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        if self._phase is not _Phase.HANDSHAKE:
            return
        content_type = "text/plain; charset=utf-8"
        extra: list[tuple[str, str]] = []
        for raw_name, raw_value in headers:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            if name.lower() == "content-type":
                content_type = value
            elif name.lower() not in ("content-length", "connection"):
                extra.append((name, value))
        self._cancel_deadline()
        self._phase = _Phase.CLOSED
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(
                http_response(status, body, content_type=content_type, headers=tuple(extra))
            )
            transport.close()

    async def send_message(self, data: bytes, *, text: bool) -> None:
        """Queue one message; wait while the backlog is over the bound (ASGI back-pressure)."""
        while True:
            ws = self._ws
            transport = self._transport
            if ws is None or transport is None or self._phase is not _Phase.WEBSOCKET:
                raise OSError("the WebSocket is closed")
            ws.set_transport_backlog(transport.get_write_buffer_size())
            if ws.send_text(data) if text else ws.send_binary(data):
                self._mark()
                return
            if self._drained is None:
                self._drained = asyncio.Event()
            self._drained.clear()
            await self._drained.wait()

    def close_with(self, code: int, reason: str) -> None:
        ws = self._ws
        if ws is None or ws.state is not State.OPEN:
            return
        try:
            ws.send_close(asyncio.get_running_loop().time(), code, reason)
        except ValueError:  # a code that may not be sent (RFC 6455 §7.4)
            ws.send_close(asyncio.get_running_loop().time(), CloseCode.INTERNAL_ERROR)
        self._mark()

    # -- deadlines ------------------------------------------------------------------------

    def _sync_deadline(self) -> None:
        ws = self._ws
        assert ws is not None
        when = ws.get_timer()
        if when == self._deadline_at:
            return
        self._cancel_deadline()
        if when is not None:
            self._deadline_at = when
            self._deadline = asyncio.get_running_loop().call_at(when, self._on_deadline)

    def _on_deadline(self) -> None:
        self._deadline = None
        self._deadline_at = None
        ws = self._ws
        if ws is None:
            return
        ws.handle_timer(asyncio.get_running_loop().time())
        if ws.aborted and self._transport is not None:
            self._transport.abort()
        else:
            self._sync_deadline()

    def _abort(self) -> None:
        self._deadline = None
        if self._transport is not None:
            self._transport.abort()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._deadline_at = None


def _is_ours(buffer: bytes) -> bool | None:
    """Whether the request line is a GET of one of our paths (None: too short to tell)."""
    undecided = False
    for line in _OURS:
        if buffer.startswith(line):
            return True
        if len(buffer) < len(line) and line.startswith(buffer):
            undecided = True
    return None if undecided else False


def _request_path(buffer: bytes) -> str:
    """The path of the request line at the start of ``buffer`` (as far as it has come)."""
    target = buffer.split(b" ", 2)[1] if buffer.count(b" ") >= 2 else b""
    return target.partition(b"?")[0].decode("latin-1")


def _upgrade_asked(buffer: bytes) -> bool:
    """Whether a head we could not parse still names a WebSocket upgrade (RFC 6455 §4.1)."""
    return b"websocket" in buffer[:16384].lower()
