"""The one exception tree of the client SDK.

    ChatClientError            base class of everything the SDK raises on purpose
    ├── SendError              the server refused a message (its wire code, detail, tempId)
    ├── ClientClosed           the client was closed before the operation completed
    └── ConnectionLost         the connection dropped before the server answered

Transport failures (refused sockets, dropped connections, heart-beat timeouts, STOMP ERROR
frames) never reach the application as exceptions: the client reconnects and reports them as
`Disconnected` / `ErrorEvent` events.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "TRANSIENT_STORE_DETAIL",
    "ChatClientError",
    "ClientClosed",
    "ConnectionLost",
    "SendError",
]

# The `detail` the server puts in SEND_FAILED when the database, not the message, failed
# (README "Errors": "... or the database failed"). Only that failure is worth retrying.
TRANSIENT_STORE_DETAIL: Final = "could not be stored"


class ChatClientError(Exception):
    """Base class of the exceptions the SDK raises."""


class SendError(ChatClientError):
    """The server answered a SEND with an error payload instead of a RECEIPT.

    `transient` is True for RATE_LIMITED and for SEND_FAILED caused by a database failure: the
    client already retried those (bounded, with backoff) before raising, and the application
    may retry again with the same `temp_id` (the server stores a repeated tempId once).
    Anything else (an invalid message, UNAUTHORIZED) fails the same way every time.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        detail: str | None = None,
        temp_id: str | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(f"{code}: {detail or message}")
        self.code = code
        self.message = message
        self.detail = detail
        self.temp_id = temp_id
        self.transient = transient


class ClientClosed(ChatClientError):
    """`close()` was called; pending sends fail with this."""


class ConnectionLost(ChatClientError):
    """The connection dropped while waiting for the server's answer."""
