"""Uploads into a local folder, for the embedded default: the server itself accepts the signed
PUT and serves the file back.

An upload URL is ``{base}/uploads/{key}?type=T&size=N&expires=E&sig=S`` where ``S`` is the
HMAC-SHA256 (base64url, unpadded) of ``PUT``, the key, the type, the size and the expiry, so
none of them can be changed without the server noticing. The key is the one the server chose;
the file lands at ``{upload_dir}/{key}`` and nowhere else (:func:`parse_key` admits nothing
but ``{uuid}/{32 hex}.{ext}``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from ieum_chat.errors import Conflict, SignatureInvalid
from ieum_chat.uploads.base import UploadBackend, UploadTicket, parse_key

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
        max_bytes: int,
        ttl: int,
    ) -> None:
        super().__init__(max_bytes=max_bytes, ttl=ttl)
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

    def _exists(self, key: str) -> bool:
        path = self.path_for(key)
        return path is not None and path.is_file()

    def check_unused(self, key: str) -> None:
        """Raise :class:`Conflict` when the file of ``key`` is there already (a cheap early
        answer; :meth:`store` decides)."""
        if self._exists(key):
            raise Conflict(_USED)

    async def store(self, key: str, data: bytes) -> None:
        """Create the file, whole, once: a served image is ``immutable``, so an upload URL
        never replaces what it uploaded. Raises :class:`Conflict` when the file exists,
        however many PUTs race for it."""
        path = self.path_for(key)
        if path is None:
            raise ValueError(f"not an upload key: {key[:100]!r}")
        if not await asyncio.to_thread(_create_once, path, data):
            raise Conflict(_USED)


_USED = "this upload URL has been used; ask for a new one"


def _create_once(path: Path, data: bytes) -> bool:
    """Write ``data`` to a temporary file, then link it to ``path``: readers see no file or
    the whole one, and the link fails if ``path`` exists (atomic, unlike a check then a
    rename). False when another upload got there first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)
