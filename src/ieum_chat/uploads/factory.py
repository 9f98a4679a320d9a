"""The upload backend the settings choose, and the URL clients reach the server at."""

from __future__ import annotations

import logging
import secrets

from ieum_chat.config import DEV_JWT_SECRET, Settings
from ieum_chat.uploads.base import UploadBackend
from ieum_chat.uploads.local import LocalUploads, derive_key

__all__ = ["create_upload_backend", "public_base_url"]

log = logging.getLogger(__name__)


def public_base_url(settings: Settings) -> str:
    """The server's URL as clients reach it (``IEUM_PUBLIC_URL``, else ``http://HOST:PORT``)."""
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


def _signing_key(settings: Settings) -> bytes:
    if settings.upload_secret:
        return derive_key(settings.upload_secret)
    if settings.jwt_secret != DEV_JWT_SECRET:
        return derive_key(settings.jwt_secret)
    # No secret of the operator's to derive from (development, or tokens verified with a
    # public key): a key of this process only. URLs do not survive a restart, nor reach
    # another node; set IEUM_UPLOAD_SECRET for that.
    log.warning("IEUM_UPLOAD_SECRET is not set: upload URLs are signed with a per-process key")
    return secrets.token_bytes(32)


def create_upload_backend(settings: Settings) -> UploadBackend:
    """S3 when ``IEUM_S3_BUCKET`` is set (boto3 imported only then), else the local folder."""
    if settings.s3_bucket:
        from ieum_chat.uploads.s3 import S3Uploads

        return S3Uploads(
            settings.s3_bucket,
            max_bytes=settings.upload_max_bytes,
            ttl=settings.upload_ttl,
            content_types=settings.upload_content_types,
            region=settings.s3_region,
            endpoint_url=settings.s3_endpoint_url,
            public_url=settings.s3_public_url,
        )
    return LocalUploads(
        settings.upload_dir,
        base_url=public_base_url(settings),
        signing_key=_signing_key(settings),
        max_bytes=settings.upload_max_bytes,
        ttl=settings.upload_ttl,
        content_types=settings.upload_content_types,
    )
