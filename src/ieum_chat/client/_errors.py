"""The one exception tree of the client SDK.

    ChatClientError            base class of everything the SDK raises on purpose
    ├── SendError              the server refused a message (its wire code, detail, tempId)
    ├── ClientClosed           the client was closed before the operation completed
    ├── ConnectionLost         the connection dropped before the server answered
    ├── UploadError            an upload was refused (HTTP status, the server's code, detail)
    │   ├── UploadTooLarge     413 PAYLOAD_TOO_LARGE: over the limit of the file's kind
    │   ├── UnsupportedMedia   415 UNSUPPORTED_MEDIA_TYPE: a type not accepted, or bytes
    │   │                      that are not what the type says
    │   └── QuotaExceeded      429 QUOTA_EXCEEDED: the couple's bytes of the day (or
    │                          RATE_LIMITED); retry_after
    └── AdminError             the service API refused a call (``_admin``)

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
    "QuotaExceeded",
    "SendError",
    "UnsupportedMedia",
    "UploadError",
    "UploadTooLarge",
    "upload_error",
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


class UploadError(ChatClientError):
    """A step of an upload (the ticket, the bytes, the completion) was refused: ``status``
    (HTTP), ``code`` (the server's: ``BAD_REQUEST``, ``CONFLICT``, ...; object storage's for
    the S3 form, e.g. ``AccessDenied``; ``UNEXPECTED`` for an answer that is not one),
    ``detail`` (why)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}" if detail else f"{status} {code}")
        self.status = status
        self.code = code
        self.detail = detail


class UploadTooLarge(UploadError):
    """413: the file is over the limit of its kind (or larger than declared)."""


class UnsupportedMedia(UploadError):
    """415: the server does not accept this content type, or the bytes are not of it (the
    server keeps nothing)."""


class QuotaExceeded(UploadError):
    """429: the couple has uploaded its bytes of the day (``QUOTA_EXCEEDED``), or asked too
    fast (``RATE_LIMITED``); ``retry_after`` (seconds, from Retry-After) says when to try
    again, None when the server did not say."""

    def __init__(
        self, status: int, code: str, detail: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(status, code, detail)
        self.retry_after = retry_after


# Object storage refuses an oversized form POST with 400 EntityTooLarge, not 413.
_TOO_LARGE_CODES: Final = frozenset({"PAYLOAD_TOO_LARGE", "EntityTooLarge"})


def upload_error(
    status: int, code: str, detail: str, *, retry_after: float | None = None
) -> UploadError:
    """The exception of one refused step, by status (or object storage's code)."""
    if status == 413 or code in _TOO_LARGE_CODES:
        return UploadTooLarge(status, code, detail)
    if status == 415:
        return UnsupportedMedia(status, code, detail)
    if status == 429:
        return QuotaExceeded(status, code, detail, retry_after=retry_after)
    return UploadError(status, code, detail)
