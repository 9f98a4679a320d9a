"""The two ways a WebSocket peer can fail us, one per phase of the connection.

HandshakeError   the opening request is not one we upgrade: answer with `status`, then close
ProtocolError    a frame broke RFC 6455 §5: send a Close frame with `code`, then close

A misuse of this API by the server (a ping payload over 125 bytes, a close code that may not be
sent) is a bug, not a peer error, and raises ValueError.
"""

from __future__ import annotations

__all__ = ["HandshakeError", "ProtocolError"]


class HandshakeError(Exception):
    """The upgrade request is refused; `message` never quotes the request, so it is safe to send.

    `headers` are extra response headers the status calls for (RFC 9110 §15.5.6 Allow on 405,
    RFC 6455 §4.2.2 Sec-WebSocket-Version on 426).
    """

    status: int
    message: str
    headers: tuple[tuple[str, str], ...]

    def __init__(
        self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class ProtocolError(Exception):
    """The client broke the framing rules; `code` is the close code to fail the connection with
    (RFC 6455 §7.1.7, §7.4.1): 1002, 1007, 1008 (a bound that is ours, not the RFC's) or
    1009."""

    code: int
    message: str

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
