"""A sans-IO RFC 6455 server core: the opening handshake, then one `Connection` per socket.

Nothing here touches a socket or an event loop. The shell buffers bytes until `head_length()`
finds the request head, answers with `accept_response()` or `http_response()`, then feeds every
later byte to a `Connection` and writes what its `data_to_send()` returns; the connection owns
the closing handshake, the close deadline and the bounds on what a peer can make us hold.
"""

from ._close import CloseCode
from ._connection import Connection, State
from ._errors import HandshakeError, ProtocolError
from ._events import BinaryMessage, CloseReceived, Event, Ping, Pong, TextMessage
from ._handshake import (
    MAX_HEAD,
    UpgradeRequest,
    accept_response,
    head_length,
    http_response,
    parse_request,
    validate_upgrade,
)
from ._parser import FrameParser
from ._serializer import binary_frame, close_frame, ping_frame, pong_frame, text_frame

__all__ = [
    "MAX_HEAD",
    "BinaryMessage",
    "CloseCode",
    "CloseReceived",
    "Connection",
    "Event",
    "FrameParser",
    "HandshakeError",
    "Ping",
    "Pong",
    "ProtocolError",
    "State",
    "TextMessage",
    "UpgradeRequest",
    "accept_response",
    "binary_frame",
    "close_frame",
    "head_length",
    "http_response",
    "parse_request",
    "ping_frame",
    "pong_frame",
    "text_frame",
    "validate_upgrade",
]
