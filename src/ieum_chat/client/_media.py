"""What the upload API answers, typed: the ticket of ``POST /chat/rooms/{roomId}/uploads`` and
the result of an upload (its PUT, its completion). No I/O here: :class:`ChatApi` does the
requests.

An answer that is not what the API promises (a key missing, a wrong type) raises
:class:`UploadError` with the code ``UNEXPECTED``: the server in front is not this one, or
newer in a way this SDK cannot follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Literal

from ._errors import UploadError
from ._events import parse_timestamp

__all__ = ["UploadResult", "UploadTicket", "parse_result", "parse_ticket"]


@dataclass(frozen=True, slots=True)
class UploadTicket:
    """Where and how to upload one file, before ``expires_at``."""

    upload_id: str
    kind: str
    """IMAGE, AUDIO, VIDEO or FILE: the message type that will carry it."""
    method: Literal["PUT", "POST"]
    """PUT: the bytes as the body, with ``headers`` (this server). POST: a multipart form of
    every entry of ``fields``, then the file as ``file`` (object storage)."""
    upload_url: str
    headers: dict[str, str]
    fields: dict[str, str]
    expires_at: datetime
    expires_in: int
    media_url: str
    image_url: str | None
    """``media_url`` for an image, None for the other kinds."""
    complete_url: str
    """POST it (no body) once the bytes are up: the server checks them and answers the
    :class:`UploadResult`."""


@dataclass(frozen=True, slots=True)
class UploadResult:
    """A completed upload: send it with ``ChatClient.send_upload`` (or ``send_image``,
    ``send_audio``, ``send_video``, ``send_file`` with ``media_url``). What does not apply to
    its kind is None: ``duration_ms`` for audio and video, ``width``/``height`` for images
    and videos, ``thumbnail_url`` (a WebP, at most 320 px) for images and videos when one
    could be made in time, ``file_name`` for files."""

    upload_id: str
    kind: str
    content_type: str
    size: int
    media_url: str
    image_url: str | None
    thumbnail_url: str | None
    duration_ms: int | None
    width: int | None
    height: int | None
    file_name: str | None


class _Malformed(ValueError):
    pass


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise _Malformed(f"{key!r} must be a non-empty string")
    return value


def _opt_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _Malformed(f"{key!r} must be a string or null")


def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Malformed(f"{key!r} must be a non-negative integer")
    return value


def _opt_int(data: dict[str, Any], key: str) -> int | None:
    return None if data.get(key) is None else _int(data, key)


def _strings(data: dict[str, Any], key: str) -> dict[str, str]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _Malformed(f"{key!r} must map strings to strings")
    return dict(value)


def _answer(data: object, status: int, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise UploadError(status, "UNEXPECTED", f"{what} is not a JSON object")
    return data


def parse_ticket(data: object, status: int = 200, tz: tzinfo | None = None) -> UploadTicket:
    """The presign answer (``status``: its HTTP status, for the error)."""
    ticket = _answer(data, status, "the upload ticket")
    try:
        method = _str(ticket, "method")
        if method not in ("PUT", "POST"):
            raise _Malformed(f"'method' must be PUT or POST, not {method[:20]!r}")
        try:
            expires_at = parse_timestamp(_str(ticket, "expiresAt"), tz)
        except ValueError:
            raise _Malformed("'expiresAt' is not an ISO-8601 date-time") from None
        return UploadTicket(
            upload_id=_str(ticket, "uploadId"),
            kind=_str(ticket, "kind"),
            method="PUT" if method == "PUT" else "POST",
            upload_url=_str(ticket, "uploadUrl"),
            headers=_strings(ticket, "headers"),
            fields=_strings(ticket, "fields"),
            expires_at=expires_at,
            expires_in=_int(ticket, "expiresIn"),
            media_url=_str(ticket, "mediaUrl"),
            image_url=_opt_str(ticket, "imageUrl"),
            complete_url=_str(ticket, "completeUrl"),
        )
    except _Malformed as exc:
        raise UploadError(status, "UNEXPECTED", f"the upload ticket: {exc}") from None


def parse_result(data: object, status: int = 200) -> UploadResult:
    """The answer of a completion (or of the local PUT)."""
    result = _answer(data, status, "the upload result")
    try:
        return UploadResult(
            upload_id=_str(result, "uploadId"),
            kind=_str(result, "kind"),
            content_type=_str(result, "contentType"),
            size=_int(result, "size"),
            media_url=_str(result, "mediaUrl"),
            image_url=_opt_str(result, "imageUrl"),
            thumbnail_url=_opt_str(result, "thumbnailUrl"),
            duration_ms=_opt_int(result, "durationMs"),
            width=_opt_int(result, "width"),
            height=_opt_int(result, "height"),
            file_name=_opt_str(result, "fileName"),
        )
    except _Malformed as exc:
        raise UploadError(status, "UNEXPECTED", f"the upload result: {exc}") from None
