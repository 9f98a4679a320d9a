"""One server-side WebSocket connection after the opening handshake, without I/O.

The shell moves bytes: what the socket reads goes to `receive_data()` (and its end to
`receive_eof()`); `events_received(now)` parses and returns the messages; what
`data_to_send()` returns goes to the socket. The connection owns everything else: answering
Pings, the closing handshake (RFC 6455 §7.1), failing on a protocol error (§7.1.7), the close
deadline (`get_timer()`/`handle_timer(now)`; the time is always passed in), and the bound on
what the peer can make us hold:

- outbound: every byte produced for the peer, Pongs and Close frames included, counts until the
  shell reports the transport has taken it (`set_transport_backlog()`). Over `outbound_limit`,
  `send_text()` refuses (a slow consumer), Pongs wait, and `congested` tells the shell to stop
  reading. Pings answered while a Pong is still waiting are coalesced into one Pong for the
  most recent Ping, which §5.5.3 allows.
- inbound: the parser bounds a message by bytes and fragments, and one `events_received()`
  call parses at most `max_frames_per_turn` frames; `input_pending` then tells the shell to
  call again on a later turn of its loop instead of reading more.
"""

from __future__ import annotations

import enum
from typing import Final

from ._close import CloseCode
from ._errors import ProtocolError
from ._events import BinaryMessage, CloseReceived, Event, Ping, TextMessage
from ._parser import DEFAULT_MAX_FRAGMENTS, FrameParser
from ._serializer import binary_frame, close_frame, pong_frame, text_frame

__all__ = ["Connection", "State"]

_EMPTY: Final = b""


class State(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"  # our Close is out (or we failed); waiting for the peer's Close or EOF
    CLOSED = "closed"  # the shell closes the transport once `data_to_send()` is written


class Connection:
    """The server end of one WebSocket, from the 101 response on.

    `close_timeout` is how long the peer has, after our Close (or our failing the connection),
    to answer before the transport is aborted (§7.1.1 lets the server close first; the timer
    keeps a peer that never answers from holding the socket).
    """

    __slots__ = (
        "_close_code",
        "_close_sent",
        "_close_timeout",
        "_deadline",
        "_eof_wanted",
        "_failed",
        "_limit",
        "_max_frames",
        "_parser",
        "_pong",
        "_state",
        "_transport_backlog",
        "_unsent",
        "_unsent_bytes",
        "aborted",
    )

    def __init__(
        self,
        *,
        max_message_size: int,
        outbound_limit: int,
        max_fragments: int = DEFAULT_MAX_FRAGMENTS,
        max_frames_per_turn: int = 128,
        close_timeout: float = 5.0,
    ) -> None:
        if outbound_limit < 1 or max_frames_per_turn < 1 or close_timeout <= 0:
            raise ValueError("limits must be positive")
        self._parser = FrameParser(max_message_size=max_message_size, max_fragments=max_fragments)
        self._limit = outbound_limit
        self._max_frames = max_frames_per_turn
        self._close_timeout = close_timeout
        self._state = State.OPEN
        # Frames not yet taken by data_to_send(); None while there are none (an idle
        # connection holds no list).
        self._unsent: list[bytes] | None = None
        self._unsent_bytes = 0
        self._transport_backlog = 0
        self._pong: bytes | None = None  # the payload of the most recent unanswered Ping
        self._close_sent = False
        self._close_code: int | None = None
        self._eof_wanted = False
        self._failed = False
        self._deadline: float | None = None
        #: The close deadline passed: the shell aborts the transport (no more bytes for it).
        self.aborted = False

    # -- state -----------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def close_code(self) -> int | None:
        """The code of the Close we sent, once sent."""
        return self._close_code

    @property
    def eof_wanted(self) -> bool:
        """We failed the connection: the shell ends its half of the TCP connection after
        writing, and reads on (dropping everything) until EOF or the deadline (§7.1.7)."""
        return self._eof_wanted

    # -- inbound -----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes read from the socket; parsed by the next `events_received()`. Once failed,
        input is dropped: it is read only so the peer gets our Close rather than a reset."""
        if not self._failed:
            self._parser.receive_data(data)

    def receive_eof(self) -> None:
        """The peer closed its half: the connection is over, with or without a handshake."""
        self._state = State.CLOSED
        self._deadline = None
        self._pong = None

    @property
    def input_pending(self) -> bool:
        """`events_received()` stopped at its per-turn bound with frames still buffered: call
        it again on a later turn, and read nothing more meanwhile."""
        return self._parser.starved

    def events_received(self, now: float) -> list[Event]:
        """Parse at most `max_frames_per_turn` frames; return the messages and control frames.

        Messages are returned only while OPEN (§7.1.2 lets us drop data once our Close is out).
        A Ping is answered, a Close echoed (§5.5.1), a protocol error fails the connection; the
        answers are in `data_to_send()`.
        """
        parser = self._parser
        parser.quota = self._max_frames
        events: list[Event] = []
        while True:
            try:
                event = parser.next_event()
            except ProtocolError as exc:
                self.fail(exc.code, exc.message, now)
                break
            if event is None:
                break
            kind = type(event)
            if kind is TextMessage or kind is BinaryMessage:
                if self._state is State.OPEN:
                    events.append(event)
                continue
            if kind is Ping:
                assert isinstance(event, Ping)
                if self._state is State.OPEN:
                    self._answer(event.payload)
            elif kind is CloseReceived:
                assert isinstance(event, CloseReceived)
                self._on_close(event)
            events.append(event)
        return events

    def _on_close(self, event: CloseReceived) -> None:
        # §5.5.1: answer a Close with a Close echoing its code (none for an empty body), then
        # the server closes the TCP connection first (§7.1.1).
        if not self._close_sent:
            code = event.code
            self._queue_close(close_frame(code), code)
        self._pong = None
        self._state = State.CLOSED
        self._deadline = None

    # -- outbound ------------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Bytes produced for the peer and not yet taken by it: ours, plus the transport's."""
        return self._unsent_bytes + self._transport_backlog

    @property
    def congested(self) -> bool:
        """Over the outbound bound: the shell stops reading until the peer catches up."""
        return self.backlog >= self._limit

    def set_transport_backlog(self, size: int) -> None:
        """What the transport still holds of the bytes `data_to_send()` returned."""
        self._transport_backlog = size

    def send_text(self, payload: bytes) -> bool:
        """Queue one text message (`payload` is UTF-8). False, and nothing queued, when it
        would take the backlog past the bound (an empty backlog takes any one message).
        Once closing, messages are dropped (§7.1.2) and True is returned."""
        return self._send(text_frame(payload))

    def send_binary(self, payload: bytes) -> bool:
        return self._send(binary_frame(payload))

    def _send(self, frame: bytes) -> bool:
        if self._state is not State.OPEN:
            return True
        backlog = self.backlog
        if backlog and backlog + len(frame) > self._limit:
            return False
        self._queue(frame)
        return True

    def _queue(self, frame: bytes) -> None:
        unsent = self._unsent
        if unsent is None:
            self._unsent = [frame]
        else:
            unsent.append(frame)
        self._unsent_bytes += len(frame)

    def discard(self) -> None:
        """Drop what is queued and not yet handed to the shell (a slow consumer's)."""
        self._unsent = None
        self._unsent_bytes = 0

    def _answer(self, payload: bytes) -> None:
        # §5.5.3: in order with what else we send while under the bound; over it, only the
        # most recent Ping is answered, once the peer has taken enough.
        if self.congested:
            self._pong = payload
            return
        self._queue(pong_frame(payload))

    def data_to_send(self) -> bytes:
        """Everything to write now, in one piece; it counts in the backlog until the shell's
        next `set_transport_backlog()` says the transport has passed it on."""
        if self._pong is not None and self._state is State.OPEN and not self.congested:
            payload, self._pong = self._pong, None
            self._answer(payload)
        unsent = self._unsent
        if unsent is None:
            return _EMPTY
        data = unsent[0] if len(unsent) == 1 else _EMPTY.join(unsent)
        self._unsent = None
        self._transport_backlog += self._unsent_bytes
        self._unsent_bytes = 0
        return data

    # -- closing -------------------------------------------------------------------------------

    def send_close(self, now: float, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Start the closing handshake (§7.1.2): what is queued goes first, then our Close;
        the peer has `close_timeout` from `now` to answer with its own."""
        if self._state is not State.OPEN:
            return
        self._queue_close(close_frame(code, reason), code)
        self._pong = None
        self._state = State.CLOSING
        self._deadline = now + self._close_timeout

    def fail(self, code: int, reason: str, now: float) -> None:
        """_Fail the WebSocket Connection_ (§7.1.7): drop what is queued, send a Close with
        `code` unless one is out, end our half; what the peer sends afterwards is dropped."""
        if self._state is State.CLOSED:
            return
        # Nothing follows a Close (send_text drops once not open): if ours is still queued
        # it is the last frame, and it stays.
        close = self._unsent[-1:] if self._close_sent and self._unsent else []
        self.discard()
        self._pong = None
        if close:
            self._unsent = close
            self._unsent_bytes = len(close[0])
        elif not self._close_sent:
            self._queue_close(close_frame(code, reason), code)
        self._failed = True
        self._parser = FrameParser(max_message_size=0)  # drops what it held
        self._eof_wanted = True
        self._state = State.CLOSING
        self._deadline = now + self._close_timeout

    def _queue_close(self, frame: bytes, code: int | None) -> None:
        # The one frame that always goes out, past the bound: at most 125 bytes, and once.
        self._close_sent = True
        self._close_code = code
        self._queue(frame)

    def get_timer(self) -> float | None:
        """When to call `handle_timer()`: the close deadline, while closing."""
        return self._deadline

    def handle_timer(self, now: float) -> None:
        """Past the close deadline the peer has had its chance: abort (§7.1.1)."""
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            self._state = State.CLOSED
            self.aborted = True
            self.discard()
