"""The one exception tree of the SockJS component.

SockJSError
├── RemoteProtocolError   the client broke the protocol (a bad ``xhr_send`` body, a bad
│                         callback name): answered with an HTTP error, the session survives
├── LocalProtocolError    the server code misused the API: a bug, let it propagate
├── SessionClosed         ``Channel.send()`` on a session that is closing or gone
└── Rejected              raised by an endpoint to refuse a new session with an HTTP response
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "LocalProtocolError",
    "Rejected",
    "RemoteProtocolError",
    "SessionClosed",
    "SockJSError",
]


class SockJSError(Exception):
    """Base class of every error raised by `ieum_chat.sockjs`."""


class RemoteProtocolError(SockJSError):
    """The peer sent something SockJS does not allow.

    ``message`` is the short text of the HTTP error body, the wording of the SockJS 0.3
    reference server where it has one ("Payload expected.", "Broken JSON encoding.").
    """

    def __init__(self, message: str, *, status: int = 500) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class LocalProtocolError(SockJSError):
    """The server code called this API in a way the protocol or the state does not allow."""


class SessionClosed(SockJSError):
    """The session is closing or closed: nothing more can be sent on it."""


class Rejected(SockJSError):
    """An endpoint refuses to open a session: the session-creating request (or the WebSocket
    handshake) is answered with this status, body, content type and extra headers (such as
    ``retry-after``; lower-case names) instead."""

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        *,
        content_type: str = "text/plain; charset=UTF-8",
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        super().__init__(f"rejected with HTTP {status}")
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = tuple(headers)
