"""What every upload backend does: hand out presigned upload URLs for one image at a time,
recognise the image URLs it handed out, and list, read and delete a couple's stored files
(the export, the purge of a dissolved couple).

A file's key is ``{coupleId}/{32 hex}.{ext}``: the couple it was uploaded for, a random name
nobody can guess, and an extension that follows from the declared content type. Keys are
made here and parsed here, so no backend can be talked into a path of the client's choosing.
"""

from __future__ import annotations

import abc
import re
import secrets
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal
from urllib.parse import quote

from ieum_chat.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from ieum_chat.media_types import CONTENT_TYPES as MEDIA_TYPES
from ieum_chat.media_types import Kind, normalize

__all__ = [
    "CONTENT_TYPES",
    "DELETE_BATCH",
    "EXTENSIONS",
    "READ_CHUNK",
    "THUMBNAIL_SUFFIX",
    "StoredFile",
    "UploadBackend",
    "UploadTicket",
    "content_type_of",
    "new_key",
    "parse_key",
    "thumbnail_key",
]

# Declared content type -> the file extension of the key (and back, when serving).
CONTENT_TYPES: dict[str, str] = {ctype: m.extension for ctype, m in MEDIA_TYPES.items()}
EXTENSIONS: dict[str, str] = {ext: ctype for ctype, ext in CONTENT_TYPES.items()}

# The largest chunk a stored file is read in: what a reader holds of a file at once.
READ_CHUNK = 64 * 1024
# Files deleted per request (S3's DeleteObjects takes at most 1000 keys).
DELETE_BATCH = 1000

_KEY = re.compile(
    r"(?P<couple>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"/(?P<name>[0-9a-f]{32})(?:\.(?P<ext>[0-9a-z]{2,4})|(?P<thumb>\.thumb\.webp))"
)
# The suffix of a thumbnail's key: it sits beside its file, under the same name.
THUMBNAIL_SUFFIX = ".thumb.webp"


def new_key(couple_id: uuid.UUID, content_type: str) -> str:
    """A fresh, unguessable key for an upload of ``content_type`` to ``couple_id``."""
    return f"{couple_id}/{secrets.token_hex(16)}.{CONTENT_TYPES[content_type]}"


def parse_key(key: str) -> uuid.UUID | None:
    """The couple of a key this module made, or ``None`` for anything else (``..``, slashes,
    other extensions, upper-case hex: nothing but the exact form we hand out)."""
    match = _KEY.fullmatch(key)
    if match is None or (match["ext"] is not None and match["ext"] not in EXTENSIONS):
        return None
    return uuid.UUID(match["couple"])


def thumbnail_key(key: str) -> str:
    """Where the thumbnail of the file of ``key`` is stored."""
    return key.rsplit(".", 1)[0] + THUMBNAIL_SUFFIX


def content_disposition(file_name: str | None) -> str:
    """``Content-Disposition`` of a served file: inline, or an attachment named ``file_name``
    (RFC 6266: an ASCII ``filename`` for old clients, the UTF-8 name in ``filename*``)."""
    if file_name is None:
        return "inline"
    fallback = "".join(c if " " <= c < "\x7f" and c not in '"\\%' else "_" for c in file_name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


def content_type_of(key: str) -> str:
    """The content type a well-formed key stands for."""
    if key.endswith(THUMBNAIL_SUFFIX):
        return "image/webp"
    return EXTENSIONS[key.rsplit(".", 1)[1]]


@dataclass(frozen=True, slots=True)
class UploadTicket:
    """Where and how to upload one file, and the URL to put in the IMAGE message afterwards.

    ``method`` is ``PUT`` (send the bytes as the body, with ``headers``) or ``POST`` (an HTML
    form upload: every entry of ``fields``, then the file as the field ``file``).
    """

    method: Literal["PUT", "POST"]
    upload_url: str
    image_url: str
    """The URL the file is served from once checked (the message's ``mediaUrl``)."""
    expires_at: float
    """Epoch seconds after which the upload URL is refused."""
    key: str
    headers: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)


class StoredFile:
    """A stored file opened for reading (:meth:`UploadBackend.open_file`): its ``size`` in
    bytes and last modification (epoch seconds), and its bytes when iterated, in chunks of at
    most :data:`READ_CHUNK` bytes. Reading blocks, like the call that opened it. Close it
    (``with``), read to the end or not: that releases the file or the connection."""

    __slots__ = ("_chunks", "_close", "key", "modified", "size")

    def __init__(
        self,
        key: str,
        size: int,
        modified: float,
        chunks: Iterator[bytes],
        close: Callable[[], None],
    ) -> None:
        self.key = key
        self.size = size
        self.modified = modified
        self._chunks = chunks
        self._close = close

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        self._close()

    def __enter__(self) -> StoredFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class UploadBackend(abc.ABC):
    """Presigned uploads of chat media. Subclasses implement :meth:`image_url`,
    :meth:`key_of` and :meth:`_presign`; the checks of type and size are made here, once, for
    all of them. They fetch what a client uploaded and publish the checked file
    (:meth:`fetch_upload`, :meth:`publish`), delete files (:meth:`delete_keys`), and list, read
    and delete what is stored for a couple (:meth:`iter_keys`, :meth:`open_file`,
    :meth:`delete_files`).

    Those three touch the storage itself (the disk; S3 over the network) and block the
    calling thread. Async code runs each call in a worker thread (``asyncio.to_thread``, or
    an executor of its own), and takes the items of an iterator one ``next`` per call, so
    that the event loop never waits on a disk or a bucket. An iterator is used by one thread
    at a time. They raise :class:`~ieum_chat.errors.UploadStorageError` when the storage
    fails.
    """

    def __init__(
        self,
        *,
        max_bytes: Mapping[Kind, int] | int,
        ttl: int,
        content_types: Collection[str] | None = None,
    ) -> None:
        limits = dict.fromkeys(Kind, max_bytes) if isinstance(max_bytes, int) else dict(max_bytes)
        if set(limits) != set(Kind) or min(limits.values()) < 1 or ttl < 1:
            raise ValueError("uploads need max_bytes >= 1 for every kind and ttl >= 1")
        self.max_bytes: dict[Kind, int] = limits
        self.ttl = ttl
        self.content_types = frozenset(content_types if content_types is not None else MEDIA_TYPES)

    def presign(
        self, couple_id: uuid.UUID, content_type: str, size: int, *, now: float
    ) -> UploadTicket:
        """A ticket for uploading ``size`` bytes of ``content_type`` into ``couple_id``'s room.

        Raises :class:`UnsupportedMediaType` for a type not in :data:`CONTENT_TYPES`,
        :class:`PayloadTooLarge` above ``max_bytes`` and :class:`BadRequest` below one byte.
        """
        content_type = normalize(content_type)
        if content_type not in self.content_types:
            raise UnsupportedMediaType(
                f"content type {content_type[:100]!r} is not accepted; "
                f"use one of {', '.join(sorted(self.content_types))}"
            )
        kind = MEDIA_TYPES[content_type].kind
        if size > self.max_bytes[kind]:
            raise PayloadTooLarge(
                f"{size} bytes is over the limit of {self.max_bytes[kind]} bytes "
                f"for {kind.value.lower()} uploads"
            )
        if size < 1:
            raise BadRequest("'size' must be at least 1 byte")
        key = new_key(couple_id, content_type)
        return self._presign(key, content_type, size, expires_at=int(now) + self.ttl)

    @abc.abstractmethod
    def key_of(self, url: str) -> str | None:
        """The key behind one of our image URLs, or ``None`` if ``url`` is not one."""

    @abc.abstractmethod
    def image_url(self, key: str) -> str:
        """The URL the file of ``key`` is served from, once uploaded."""

    @abc.abstractmethod
    def _presign(self, key: str, content_type: str, size: int, *, expires_at: int) -> UploadTicket:
        """The ticket for an already-checked upload."""

    # -- publishing checked files (blocking: see the class) ---------------------------------

    @abc.abstractmethod
    def fetch_upload(self, key: str, dest: Path, limit: int) -> bool:
        """Copy the bytes a client uploaded for ``key`` (not yet checked) into ``dest``, at
        most ``limit`` of them; False when nothing was uploaded. Backends whose clients
        upload through the server (the local folder's PUT) have nothing to fetch: False."""

    @abc.abstractmethod
    def publish(
        self, key: str, source: Path, content_type: str, *, file_name: str | None = None
    ) -> bool:
        """Put the checked file ``source`` at ``key``, where its URL serves it (as an
        attachment named ``file_name`` when given), and drop what was uploaded unchecked.
        False when a file is there already: a published file never changes."""

    @abc.abstractmethod
    def delete_keys(self, keys: Collection[str]) -> int:
        """Delete these files (and anything uploaded for them and never checked); how many
        there were. Keys that are not ours are skipped; missing files are no error."""

    # -- a couple's stored files (blocking: see the class) ----------------------------------

    @abc.abstractmethod
    def iter_keys(self, couple_id: uuid.UUID) -> Iterator[str]:
        """The key of every file stored for ``couple_id``, one at a time: the listing is read
        as it is consumed (a page of it at most), never whole. Anything stored under the
        couple that is not a key of ours (:func:`parse_key`) is skipped. No order is
        promised. Close the iterator when leaving it early."""

    @abc.abstractmethod
    def open_file(self, key: str) -> StoredFile | None:
        """The file of ``key`` opened for reading in chunks (its size known), or ``None`` when
        there is none (never uploaded, or deleted since it was listed). Raises
        :class:`ValueError` for a key we never hand out."""

    @abc.abstractmethod
    def delete_files(self, couple_id: uuid.UUID) -> int:
        """Delete every file stored for ``couple_id`` (every key :meth:`iter_keys` lists);
        how many were deleted. Idempotent: a second call, or a couple that never uploaded
        anything, deletes nothing and answers 0; files deleted meanwhile by someone else are
        no error. A file uploaded after the call (with an upload URL handed out before it
        and still valid) is not deleted: call it once every URL of the couple has expired
        (``ttl`` seconds after the last was handed out)."""
