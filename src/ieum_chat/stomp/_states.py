"""The session's states and the timer outcomes it reports."""

from __future__ import annotations

import enum

__all__ = ["SessionState", "TimerAction"]


class SessionState(enum.Enum):
    AWAITING_CONNECT = "AWAITING_CONNECT"
    """Waiting for the client's CONNECT or STOMP frame."""
    CONNECTING = "CONNECTING"
    """CONNECT received; waiting for the shell's `accept()` (or `error()`)."""
    CONNECTED = "CONNECTED"
    """Also right after DISCONNECT, until `close_after_disconnect()`: writes only."""
    CLOSED = "CLOSED"
    """After `error()`, or `close_after_disconnect()`: nothing is read, only a RECEIPT written."""


class TimerAction(enum.Enum):
    SEND_HEARTBEAT = "SEND_HEARTBEAT"
    """Write b"\\n", then call `note_sent(now)`."""
    CONNECT_TIMEOUT = "CONNECT_TIMEOUT"
    """No accepted CONNECT in time: send `error()` and close."""
    PEER_TIMEOUT = "PEER_TIMEOUT"
    """Nothing received for the grace multiple of the client's heart-beat: close."""
    EXPIRED = "EXPIRED"
    """The deadline given to `set_expiry()` (the token's exp) passed: send `error()`, close."""
