"""Presigned uploads straight into an S3 (or S3-compatible) bucket, for production.

The server never sees the bytes: it hands out a presigned POST (an HTML form upload) whose
policy pins the key, the ``Content-Type`` and a ``content-length-range`` of 1 to the declared
size, so S3 itself refuses a bigger file, another type or another key. Presigning is local
computation with the configured credentials (boto3's usual chain: environment, profile,
instance role); no request reaches S3 until the client uploads.

boto3 is the optional dependency ``ieum-chat[s3]``, imported only when this backend is built.
"""

from __future__ import annotations

from typing import Any

from ieum_chat.uploads.base import UploadBackend, UploadTicket, parse_key

__all__ = ["S3Uploads", "default_public_url"]

_DEFAULT_REGION = "us-east-1"


def default_public_url(bucket: str, region: str | None, endpoint_url: str | None) -> str:
    """Where the bucket's objects are read from when no CDN URL is configured."""
    if endpoint_url:
        return f"{endpoint_url.rstrip('/')}/{bucket}"
    return f"https://{bucket}.s3.{region or _DEFAULT_REGION}.amazonaws.com"


class S3Uploads(UploadBackend):
    def __init__(
        self,
        bucket: str,
        *,
        max_bytes: int,
        ttl: int,
        region: str | None = None,
        endpoint_url: str | None = None,
        public_url: str | None = None,
        client: Any = None,
    ) -> None:
        super().__init__(max_bytes=max_bytes, ttl=ttl)
        if not bucket:
            raise ValueError("an S3 bucket name is required")
        self.bucket = bucket
        self.public_url = (public_url or default_public_url(bucket, region, endpoint_url)).rstrip(
            "/"
        )
        self._client = client if client is not None else _make_client(region, endpoint_url)

    def image_url(self, key: str) -> str:
        return f"{self.public_url}/{key}"

    def key_of(self, url: str) -> str | None:
        prefix = f"{self.public_url}/"
        if not url.startswith(prefix):
            return None
        key = url[len(prefix) :]
        return key if parse_key(key) is not None else None

    def _presign(self, key: str, content_type: str, size: int, *, expires_at: int) -> UploadTicket:
        post = self._client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[
                {"Content-Type": content_type},
                ["content-length-range", 1, size],
            ],
            ExpiresIn=self.ttl,
        )
        return UploadTicket(
            method="POST",
            upload_url=str(post["url"]),
            image_url=self.image_url(key),
            expires_at=float(expires_at),
            fields={str(k): str(v) for k, v in post["fields"].items()},
        )


def _make_client(region: str | None, endpoint_url: str | None) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:  # pragma: no cover - depends on the installation
        raise RuntimeError(
            "IEUM_S3_BUCKET is set but boto3 is not installed: pip install 'ieum-chat[s3]'"
        ) from None
    config = Config(
        signature_version="s3v4",
        # S3-compatible stores behind a custom endpoint rarely have per-bucket host names
        s3={"addressing_style": "path" if endpoint_url else "virtual"},
    )
    return boto3.session.Session().client(
        "s3", region_name=region or _DEFAULT_REGION, endpoint_url=endpoint_url, config=config
    )
