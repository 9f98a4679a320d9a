"""One SockJS session's state, with no I/O: what to send to the receiving request, when.

The shell creates a `Session` for a new session id, calls `attach()` when a receiving request
arrives (xhr, xhr_streaming, eventsource, htmlfile, jsonp, or a WebSocket for its whole life),
writes what `next_frame()` returns, calls `detach()` when that request ends, and drives the
clock through `get_timer()` / `handle_timer(now)`. Messages from the application go in with
`send()`; the outgoing buffer is bounded and `send()` says when it is full.

SockJS 0.3 rules kept here: the open frame comes first; at most one receiving request at a
time; heart-beats only while a request is attached; a session with no request attached for
the disconnect delay expires; a closed session answers every request with its close frame
until it expires (SockJS 0.3, "Handling close").
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Final

from ._errors import LocalProtocolError
from ._framing import HEARTBEAT_FRAME, OPEN_FRAME, Frame, close_frame, message_frame

__all__ = ["Attach", "Session", "SessionState", "TimerAction"]


class SessionState(enum.Enum):
    NEW = "NEW"
    """Created by a receiving request; the open frame is not taken yet."""
    OPEN = "OPEN"
    """Messages flow both ways."""
    CLOSING = "CLOSING"
    """Closed by either side: pending messages, then the close frame, to every receiver."""
    CLOSED = "CLOSED"
    """Expired: the shell forgets the session."""


class _Input(enum.Enum):
    OPEN = "open frame taken"
    CLOSE = "close()"
    INTERRUPT = "receiver interrupted"
    EXPIRE = "expired"


# The whole state machine. A pair that is not here is a bug in the shell.
_TRANSITIONS: Final[dict[tuple[SessionState, _Input], SessionState]] = {
    (SessionState.NEW, _Input.OPEN): SessionState.OPEN,
    (SessionState.NEW, _Input.CLOSE): SessionState.CLOSING,
    (SessionState.NEW, _Input.INTERRUPT): SessionState.CLOSING,
    (SessionState.NEW, _Input.EXPIRE): SessionState.CLOSED,
    (SessionState.OPEN, _Input.CLOSE): SessionState.CLOSING,
    (SessionState.OPEN, _Input.INTERRUPT): SessionState.CLOSING,
    (SessionState.OPEN, _Input.EXPIRE): SessionState.CLOSED,
    # The first close wins; later ones (the application closing after the peer went away,
    # say) change nothing.
    (SessionState.CLOSING, _Input.CLOSE): SessionState.CLOSING,
    (SessionState.CLOSING, _Input.INTERRUPT): SessionState.CLOSING,
    (SessionState.CLOSING, _Input.EXPIRE): SessionState.CLOSED,
    (SessionState.CLOSED, _Input.CLOSE): SessionState.CLOSED,
    (SessionState.CLOSED, _Input.INTERRUPT): SessionState.CLOSED,
}


class Attach(enum.Enum):
    ATTACHED = "ATTACHED"
    """This request is the session's receiver: write `next_frame()` until it says stop."""
    BUSY = "BUSY"
    """Another request is attached: answer `BUSY_FRAME` and end (the session is untouched)."""


class TimerAction(enum.Enum):
    HEARTBEAT = "HEARTBEAT"
    """A heart-beat frame is due: `next_frame()` now returns it."""
    EXPIRED = "EXPIRED"
    """No receiver for the disconnect delay: the session is CLOSED; forget it."""


INTERRUPTED: Final = (1002, "Connection interrupted")


class Session:
    """See the module docstring for the calling pattern."""

    __slots__ = (
        "_attached",
        "_close",
        "_detached_at",
        "_disconnect_delay",
        "_heartbeat_due",
        "_heartbeat_interval",
        "_last_sent",
        "_max_pending",
        "_opened",
        "_pending",
        "_pending_size",
        "_state",
    )

    def __init__(
        self,
        *,
        now: float,
        heartbeat_interval: float = 25.0,
        disconnect_delay: float = 5.0,
        max_pending: int = 1 << 20,
    ) -> None:
        if heartbeat_interval <= 0 or disconnect_delay <= 0 or max_pending <= 0:
            raise LocalProtocolError("intervals and the buffer bound must be positive")
        self._heartbeat_interval = heartbeat_interval
        self._disconnect_delay = disconnect_delay
        self._max_pending = max_pending
        self._state = SessionState.NEW
        self._opened = False
        self._pending: deque[str] = deque()
        self._pending_size = 0
        self._close: Frame | None = None
        self._attached = False
        # A session is created by its first receiving request, which attaches right away;
        # until then it counts as detached now, so a session nobody attaches to expires.
        self._detached_at = now
        self._last_sent = now
        self._heartbeat_due = False

    # -- what the shell reads -------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def attached(self) -> bool:
        return self._attached

    @property
    def is_open(self) -> bool:
        """The application may still send (NEW or OPEN)."""
        return self._state in (SessionState.NEW, SessionState.OPEN)

    @property
    def pending_size(self) -> int:
        """Characters of application messages waiting for a receiver."""
        return self._pending_size

    @property
    def close_frame(self) -> Frame | None:
        return self._close

    # -- inputs ---------------------------------------------------------------------------

    def attach(self, now: float) -> Attach:
        if self._state is SessionState.CLOSED:
            raise LocalProtocolError("attach() on an expired session")
        if self._attached:
            return Attach.BUSY
        self._attached = True
        self._heartbeat_due = False
        self._last_sent = now
        return Attach.ATTACHED

    def detach(self, now: float, *, interrupted: bool = False) -> None:
        """The receiving request ended: normally (it wrote what it could), or because the
        client went away mid-request, which closes the session with 1002 (SockJS 0.3,
        HandlingClose.test_abort_xhr_streaming: some messages may have been lost)."""
        if not self._attached:
            raise LocalProtocolError("detach() without attach()")
        self._attached = False
        self._heartbeat_due = False
        self._detached_at = now
        if interrupted:
            self._transition(_Input.INTERRUPT)
            if self._close is None:
                self._close = close_frame(*INTERRUPTED)
            self._drop_pending()

    def send(self, message: str) -> bool:
        """Buffer one application message; False when the buffer is full (nothing buffered).

        One message larger than the bound is taken when the buffer is empty, so a big
        message is never refused outright; the application bounds its own message size.
        """
        if not self.is_open:
            raise LocalProtocolError(f"send() in state {self._state.value}")
        size = len(message)
        if self._pending and self._pending_size + size > self._max_pending:
            return False
        self._pending.append(message)
        self._pending_size += size
        return True

    def close(self, code: int, reason: str) -> None:
        """Close from the application's side. Pending messages still go out before the close
        frame; the close frame is served until the session expires."""
        self._transition(_Input.CLOSE)
        if self._close is None:
            self._close = close_frame(code, reason)

    def expire(self) -> None:
        """End the session now (a WebSocket session ends with its socket)."""
        if self._state is not SessionState.CLOSED:
            self._transition(_Input.EXPIRE)
        self._attached = False
        self._drop_pending()

    # -- output ---------------------------------------------------------------------------

    def next_frame(self, now: float) -> Frame | None:
        """The next frame for the attached receiver, or None when there is nothing to send.

        After a close frame the receiver must end: nothing follows it.
        """
        if not self._attached:
            raise LocalProtocolError("next_frame() without an attached receiver")
        frame: Frame | None
        if not self._opened:
            # The open frame comes first even when the session closed before it went out:
            # a client must see its session open before it sees it close.
            self._opened = True
            if self._state is SessionState.NEW:
                self._transition(_Input.OPEN)
            frame = OPEN_FRAME
        elif self._pending:
            frame = message_frame(self._pending)
            self._drop_pending()
        elif self._close is not None:
            frame = self._close
        elif self._heartbeat_due:
            frame = HEARTBEAT_FRAME
        else:
            return None
        self._heartbeat_due = False
        self._last_sent = now
        return frame

    # -- timers ---------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When `handle_timer()` must next be called, or None."""
        if self._state is SessionState.CLOSED:
            return None
        if self._attached:
            return None if self._heartbeat_due else self._last_sent + self._heartbeat_interval
        return self._detached_at + self._disconnect_delay

    def handle_timer(self, now: float) -> TimerAction | None:
        deadline = self.get_timer()
        if deadline is None or now < deadline:
            return None
        if self._attached:
            self._heartbeat_due = True
            return TimerAction.HEARTBEAT
        self.expire()
        return TimerAction.EXPIRED

    # -- internals ------------------------------------------------------------------------

    def _transition(self, event: _Input) -> None:
        try:
            self._state = _TRANSITIONS[self._state, event]
        except KeyError:
            raise LocalProtocolError(
                f"{event.value} is not allowed in state {self._state.value}"
            ) from None

    def _drop_pending(self) -> None:
        self._pending.clear()
        self._pending_size = 0
