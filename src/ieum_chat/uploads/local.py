"""Uploads into a local folder, for the embedded default: the server itself accepts the signed
PUT and serves the file back.

An upload URL is ``{base}/uploads/{key}?type=T&size=N&expires=E&sig=S`` where ``S`` is the
HMAC-SHA256 (base64url, unpadded) of ``PUT``, the key, the type, the size and the expiry, so
none of them can be changed without the server noticing. The key is the one the server chose;
the file lands at ``{upload_dir}/{key}`` and nowhere else (:func:`parse_key` admits nothing
but ``{uuid}/{32 hex}.{ext}``). A couple's files are the folder ``{upload_dir}/{coupleId}``.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import hmac
import os
import shutil
import tempfile
import uuid
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlencode

from ieum_chat.errors import Conflict, SignatureInvalid, UploadStorageError
from ieum_chat.media_types import Kind
from ieum_chat.uploads.base import READ_CHUNK, StoredFile, UploadBackend, UploadTicket, parse_key

__all__ = ["URL_PREFIX", "LocalUploads", "derive_key"]

URL_PREFIX = "/uploads/"


def derive_key(secret: str) -> bytes:
    """The signing key for upload URLs, derived from another secret (the JWT secret) so that
    a token key never signs anything but tokens."""
    return hmac.new(secret.encode(), b"ieum-chat upload url v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class LocalUploads(UploadBackend):
    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        base_url: str,
        signing_key: bytes,
        max_bytes: Mapping[Kind, int] | int,
        ttl: int,
        content_types: Collection[str] | None = None,
    ) -> None:
        super().__init__(max_bytes=max_bytes, ttl=ttl, content_types=content_types)
        if len(signing_key) < 16:
            raise ValueError("the upload signing key needs at least 16 bytes")
        self.root = Path(directory)
        self.base_url = base_url.rstrip("/")
        self._signing_key = signing_key

    # -- URLs ------------------------------------------------------------------------------

    def image_url(self, key: str) -> str:
        return f"{self.base_url}{URL_PREFIX}{key}"

    def key_of(self, url: str) -> str | None:
        prefix = f"{self.base_url}{URL_PREFIX}"
        if not url.startswith(prefix):
            return None
        key = url[len(prefix) :]
        return key if parse_key(key) is not None else None

    def signature(self, key: str, content_type: str, size: int, expires: int) -> str:
        message = f"PUT\n{key}\n{content_type}\n{size}\n{expires}".encode()
        return _b64(hmac.new(self._signing_key, message, hashlib.sha256).digest())

    def _presign(self, key: str, content_type: str, size: int, *, expires_at: int) -> UploadTicket:
        sig = self.signature(key, content_type, size, expires_at)
        query = urlencode({"type": content_type, "size": size, "expires": expires_at, "sig": sig})
        return UploadTicket(
            method="PUT",
            upload_url=f"{self.image_url(key)}?{query}",
            image_url=self.image_url(key),
            expires_at=float(expires_at),
            key=key,
            headers={"Content-Type": content_type},
        )

    def verify(
        self, key: str, content_type: str, size: int, expires: int, sig: str, *, now: float
    ) -> None:
        """Accept an upload URL or raise :class:`SignatureInvalid` (tampered, foreign or expired).

        The signature is checked before the expiry, so that an attacker learns nothing from
        an altered ``expires``.
        """
        if parse_key(key) is None:
            raise SignatureInvalid("not an upload URL of this server")
        expected = self.signature(key, content_type, size, expires)
        if not hmac.compare_digest(expected.encode(), sig.encode()):
            raise SignatureInvalid("the upload URL's signature does not match")
        if now >= expires:
            raise SignatureInvalid("the upload URL has expired; ask for a new one")

    # -- files -----------------------------------------------------------------------------

    def path_for(self, key: str) -> Path | None:
        """Where the file of ``key`` lives; ``None`` for a key we never hand out."""
        if parse_key(key) is None:
            return None
        return self.root / key

    def has_file(self, key: str) -> bool:
        path = self.path_for(key)
        return path is not None and path.is_file()

    def check_unused(self, key: str) -> None:
        """Raise :class:`Conflict` when the file of ``key`` is there already (a cheap early
        answer; :meth:`publish` decides)."""
        if self.has_file(key):
            raise Conflict(_USED)

    def workdir(self) -> Path:
        """Where a PUT's body waits for its check: inside the folder, so that publishing it
        is a link, not a copy."""
        path = self.root / _INCOMING
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- publishing (blocking: see UploadBackend) ------------------------------------------

    def fetch_upload(self, key: str, dest: Path, limit: int) -> bool:
        return False  # the PUT brings the bytes to the server itself

    def publish(
        self, key: str, source: Path, content_type: str, *, file_name: str | None = None
    ) -> bool:
        """A link to ``source`` (a copy when it is on another file system): readers see no
        file or the whole one, and the link fails if a file is there. The download name is
        the upload's (the route reads it from its row), not the file's."""
        path = self.path_for(key)
        if path is None:
            raise ValueError(f"not an upload key: {key[:100]!r}")
        with _disk_errors(f"publishing {path}"):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, path)
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                return _create_once(path, source)
            os.chmod(path, 0o644)
        return True

    def delete_keys(self, keys: Collection[str]) -> int:
        deleted = 0
        with _disk_errors("deleting uploads"):
            for key in keys:
                path = self.path_for(key)
                if path is None:
                    continue
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                deleted += 1
        return deleted

    # -- a couple's files (blocking: see UploadBackend) ------------------------------------

    def _entries(self, couple_id: uuid.UUID) -> Iterator[os.DirEntry[str]]:
        """The entries of the couple's folder as the directory is read (none if there is no
        folder)."""
        folder = self.root / str(couple_id)
        with _disk_errors(f"listing {folder}"):
            try:
                entries = os.scandir(folder)
            except FileNotFoundError:
                return
            with entries:
                yield from entries

    def iter_keys(self, couple_id: uuid.UUID) -> Iterator[str]:
        for entry in self._entries(couple_id):
            key = f"{couple_id}/{entry.name}"
            if parse_key(key) == couple_id and entry.is_file(follow_symlinks=False):
                yield key

    def open_file(self, key: str) -> StoredFile | None:
        handle = self.open_handle(key)
        if handle is None:
            return None
        with _disk_errors(f"opening {handle.name}"):
            try:
                info = os.fstat(handle.fileno())
            except BaseException:
                handle.close()
                raise
        return StoredFile(key, info.st_size, info.st_mtime, _read(handle), handle.close)

    def open_handle(self, key: str) -> BinaryIO | None:
        """The file of ``key`` opened for reading, or ``None`` when there is none. Its holder
        reads the whole file even once it is deleted (a message unsent, a couple erased)."""
        path = self.path_for(key)
        if path is None:
            raise ValueError(f"not an upload key: {key[:100]!r}")
        with _disk_errors(f"opening {path}"):
            try:
                return path.open("rb")
            except FileNotFoundError:
                return None

    def delete_files(self, couple_id: uuid.UUID) -> int:
        """Also removes what an upload interrupted by a crash left behind (its temporary
        file holds the couple's bytes too), then the folder once it is empty."""
        deleted = 0
        folder = self.root / str(couple_id)
        with _disk_errors(f"deleting the files of {folder}"):
            for entry in self._entries(couple_id):
                key = f"{couple_id}/{entry.name}"
                ours = parse_key(key) == couple_id
                if not (ours or _is_temporary(entry.name)) or entry.is_dir(follow_symlinks=False):
                    continue
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:  # deleted meanwhile: gone all the same
                    continue
                if ours:
                    deleted += 1
            try:
                folder.rmdir()
            except OSError as exc:  # no folder, or something not ours is left in it
                if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST):
                    raise
        return deleted


_USED = "this upload URL has been used; ask for a new one"
_INCOMING = ".incoming"  # PUT bodies being checked (never a couple's folder: not a UUID)
_TEMPORARY = (".upload-", ".part")  # the prefix and suffix of _create_once's temporary files


def _is_temporary(name: str) -> bool:
    return name.startswith(_TEMPORARY[0]) and name.endswith(_TEMPORARY[1])


@contextmanager
def _disk_errors(what: str) -> Iterator[None]:
    """The folder's OSError as :class:`UploadStorageError` (the storage failed)."""
    try:
        yield
    except OSError as exc:
        raise UploadStorageError(f"{what}: {exc}") from exc


def _read(handle: BinaryIO) -> Iterator[bytes]:
    with _disk_errors(f"reading {handle.name}"):
        yield from iter(partial(handle.read, READ_CHUNK), b"")


def _create_once(path: Path, source: Path) -> bool:
    """Copy ``source`` to a temporary file beside ``path``, then link it to ``path``: readers
    see no file or the whole one, and the link fails if ``path`` exists (atomic, unlike a
    check then a rename). False when another upload got there first."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TEMPORARY[0], suffix=_TEMPORARY[1])
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as data:
            shutil.copyfileobj(data, out, READ_CHUNK)
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)
