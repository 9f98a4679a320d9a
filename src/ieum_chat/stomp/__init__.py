"""A sans-IO STOMP 1.0/1.1/1.2 server core: bytes in, events out, bytes back.

Nothing here performs I/O or reads a clock; the gateway owns the socket and passes `now` in.
"""

from ._errors import (
    FRAME_TOO_LARGE,
    PROTOCOL_ERROR,
    LocalProtocolError,
    RemoteProtocolError,
    StompError,
)
from ._events import Ack, ConnectRequested, Disconnect, Event, Nack, Send, Subscribe, Unsubscribe
from ._frame import HEARTBEAT, Frame, Heartbeat
from ._parser import FrameParser
from ._serializer import message_frame, serialize_frame
from ._session import StompSession
from ._states import SessionState, TimerAction

__all__ = [
    "FRAME_TOO_LARGE",
    "HEARTBEAT",
    "PROTOCOL_ERROR",
    "Ack",
    "ConnectRequested",
    "Disconnect",
    "Event",
    "Frame",
    "FrameParser",
    "Heartbeat",
    "LocalProtocolError",
    "Nack",
    "RemoteProtocolError",
    "Send",
    "SessionState",
    "StompError",
    "StompSession",
    "Subscribe",
    "TimerAction",
    "Unsubscribe",
    "message_frame",
    "serialize_frame",
]
