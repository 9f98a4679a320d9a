"""What every upload backend does: hand out presigned upload URLs for one image at a time,
and recognise the image URLs it handed out.

A file's key is ``{coupleId}/{32 hex}.{ext}``: the couple it was uploaded for, a random name
nobody can guess, and an extension that follows from the declared content type. Keys are
made here and parsed here, so no backend can be talked into a path of the client's choosing.
"""

from __future__ import annotations

import abc
import re
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Literal

from ieum_chat.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

__all__ = [
    "CONTENT_TYPES",
    "EXTENSIONS",
    "UploadBackend",
    "UploadTicket",
    "content_type_of",
    "new_key",
    "parse_key",
    "sniff_type",
]

# Declared content type -> the file extension of the key (and back, when serving).
CONTENT_TYPES: dict[str, str] = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
}
EXTENSIONS: dict[str, str] = {ext: ctype for ctype, ext in CONTENT_TYPES.items()}

_KEY = re.compile(
    r"(?P<couple>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"/(?P<name>[0-9a-f]{32})\.(?P<ext>jpg|png|gif|webp)"
)


def new_key(couple_id: uuid.UUID, content_type: str) -> str:
    """A fresh, unguessable key for an upload of ``content_type`` to ``couple_id``."""
    return f"{couple_id}/{secrets.token_hex(16)}.{CONTENT_TYPES[content_type]}"


def parse_key(key: str) -> uuid.UUID | None:
    """The couple of a key this module made, or ``None`` for anything else (``..``, slashes,
    other extensions, upper-case hex: nothing but the exact form we hand out)."""
    match = _KEY.fullmatch(key)
    return uuid.UUID(match["couple"]) if match else None


def content_type_of(key: str) -> str:
    """The content type a well-formed key stands for."""
    return EXTENSIONS[key.rsplit(".", 1)[1]]


def sniff_type(data: bytes) -> str | None:
    """The image type the first bytes announce (the formats' magic numbers), if one we accept."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True, slots=True)
class UploadTicket:
    """Where and how to upload one file, and the URL to put in the IMAGE message afterwards.

    ``method`` is ``PUT`` (send the bytes as the body, with ``headers``) or ``POST`` (an HTML
    form upload: every entry of ``fields``, then the file as the field ``file``).
    """

    method: Literal["PUT", "POST"]
    upload_url: str
    image_url: str
    expires_at: float
    """Epoch seconds after which the upload URL is refused."""
    headers: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)


class UploadBackend(abc.ABC):
    """Presigned uploads of chat images. Subclasses implement :meth:`image_url`,
    :meth:`key_of` and :meth:`_presign` (and :meth:`_exists` when they can tell cheaply); the
    checks of type and size are made here, once, for all of them."""

    def __init__(self, *, max_bytes: int, ttl: int) -> None:
        if max_bytes < 1 or ttl < 1:
            raise ValueError("uploads need max_bytes >= 1 and ttl >= 1")
        self.max_bytes = max_bytes
        self.ttl = ttl

    def presign(
        self, couple_id: uuid.UUID, content_type: str, size: int, *, now: float
    ) -> UploadTicket:
        """A ticket for uploading ``size`` bytes of ``content_type`` into ``couple_id``'s room.

        Raises :class:`UnsupportedMediaType` for a type not in :data:`CONTENT_TYPES`,
        :class:`PayloadTooLarge` above ``max_bytes`` and :class:`BadRequest` below one byte.
        """
        content_type = content_type.strip().lower()
        if content_type not in CONTENT_TYPES:
            raise UnsupportedMediaType(
                f"content type {content_type[:100]!r} is not accepted; "
                f"use one of {', '.join(CONTENT_TYPES)}"
            )
        if size > self.max_bytes:
            raise PayloadTooLarge(f"{size} bytes is over the limit of {self.max_bytes} bytes")
        if size < 1:
            raise BadRequest("'size' must be at least 1 byte")
        key = new_key(couple_id, content_type)
        return self._presign(key, content_type, size, expires_at=int(now) + self.ttl)

    def owns(self, url: str, couple_id: uuid.UUID) -> bool:
        """Whether ``url`` is the image URL of a file uploaded here for ``couple_id``."""
        key = self.key_of(url)
        return key is not None and parse_key(key) == couple_id and self._exists(key)

    @abc.abstractmethod
    def key_of(self, url: str) -> str | None:
        """The key behind one of our image URLs, or ``None`` if ``url`` is not one."""

    @abc.abstractmethod
    def image_url(self, key: str) -> str:
        """The URL the file of ``key`` is served from, once uploaded."""

    @abc.abstractmethod
    def _presign(self, key: str, content_type: str, size: int, *, expires_at: int) -> UploadTicket:
        """The ticket for an already-checked upload."""

    def _exists(self, key: str) -> bool:
        """Whether the file has been uploaded. Backends that cannot tell without a network
        round trip (S3) trust the unguessable key and say yes."""
        return True
