"""The one exception tree of the STOMP core.

StompError
├── RemoteProtocolError   the peer broke the protocol: answer with an ERROR frame, then close
└── LocalProtocolError    the server code misused this API: a bug, let it propagate
"""

from __future__ import annotations

__all__ = [
    "FRAME_TOO_LARGE",
    "PROTOCOL_ERROR",
    "LocalProtocolError",
    "RemoteProtocolError",
    "StompError",
]

# The detail is one short line; it goes in the ERROR frame's body, never in a header.
_MAX_MESSAGE = 200

PROTOCOL_ERROR = "PROTOCOL_ERROR"
FRAME_TOO_LARGE = "FRAME_TOO_LARGE"


class StompError(Exception):
    """Base class of every error raised by `ieum_chat.stomp`."""


class RemoteProtocolError(StompError):
    """The peer sent something that breaks STOMP or this server's limits.

    `code` is one token for the ERROR frame's `message` header (`PROTOCOL_ERROR`, or
    `FRAME_TOO_LARGE` for a frame over the size limit). `message` is one short line for people,
    which never quotes header values (CONNECT headers may carry a token); the shell puts it in
    the ERROR frame's body.
    """

    message: str
    code: str

    def __init__(self, message: str, *, code: str = PROTOCOL_ERROR) -> None:
        if "\n" in message or "\r" in message:
            message = message.replace("\r", " ").replace("\n", " ")
        self.message = message[:_MAX_MESSAGE]
        self.code = code
        super().__init__(self.message)


class LocalProtocolError(StompError):
    """The server code called this API in a way the protocol does not allow."""
