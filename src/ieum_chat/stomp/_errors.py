"""The one exception tree of the STOMP core.

StompError
├── RemoteProtocolError   the peer broke the protocol: answer with an ERROR frame, then close
└── LocalProtocolError    the server code misused this API: a bug, let it propagate
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "RemoteProtocolError", "StompError"]

# An ERROR frame's `message` header is a single short line; longer diagnostics go in the body.
_MAX_MESSAGE = 200


class StompError(Exception):
    """Base class of every error raised by `ieum_chat.stomp`."""


class RemoteProtocolError(StompError):
    """The peer sent something that breaks STOMP or this server's limits.

    `message` is always one short line that never quotes header values, so the shell can put it
    in an ERROR frame's `message` header as is (CONNECT headers may carry a token).
    """

    message: str

    def __init__(self, message: str) -> None:
        if "\n" in message or "\r" in message:
            message = message.replace("\r", " ").replace("\n", " ")
        self.message = message[:_MAX_MESSAGE]
        super().__init__(self.message)


class LocalProtocolError(StompError):
    """The server code called this API in a way the protocol does not allow."""
