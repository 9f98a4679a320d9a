"""Presigned uploads straight into an S3 (or S3-compatible) bucket, for production.

The client uploads with a presigned POST (an HTML form upload) whose policy pins the key, the
``Content-Type`` and a ``content-length-range`` of 1 to the declared size, so S3 itself
refuses a bigger file, another type or another key. That key is under ``staging/``, which is
never served: once the client says it is done, the server fetches the file, checks it, and
publishes it (or its EXIF-free copy) at the key its URL names, with the thumbnail beside it
(grant public reads on the couples' keys only, never on ``staging/``). Presigning is local
computation with the configured credentials (boto3's usual chain: environment, profile,
instance role); no request reaches S3 until the client uploads.

A couple's files are the keys under the prefix ``{coupleId}/``: listed page by page
(ListObjectsV2), read as a stream (GetObject), deleted in batches (DeleteObjects).

boto3 is the optional dependency ``ieum-chat[s3]``, imported only when this backend is built.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ieum_chat.errors import UploadStorageError
from ieum_chat.media_types import Kind
from ieum_chat.uploads.base import (
    DELETE_BATCH,
    READ_CHUNK,
    StoredFile,
    UploadBackend,
    UploadTicket,
    content_disposition,
    parse_key,
)

__all__ = ["STAGING", "S3Uploads", "default_public_url", "staging_key"]

_DEFAULT_REGION = "us-east-1"
# Where clients upload: the file reaches its key (and its URL) only once checked.
STAGING = "staging/"


def staging_key(key: str) -> str:
    return f"{STAGING}{key}"


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
        max_bytes: Mapping[Kind, int] | int,
        ttl: int,
        content_types: Collection[str] | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        public_url: str | None = None,
        client: Any = None,
    ) -> None:
        super().__init__(max_bytes=max_bytes, ttl=ttl, content_types=content_types)
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
            Key=staging_key(key),
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
            key=key,
            fields={str(k): str(v) for k, v in post["fields"].items()},
        )

    # -- publishing (blocking: see UploadBackend) ------------------------------------------

    def fetch_upload(self, key: str, dest: Path, limit: int) -> bool:
        from botocore.exceptions import ClientError

        staged = staging_key(key)
        with _s3_errors(f"reading s3://{self.bucket}/{staged}"):
            try:
                answer = self._client.get_object(Bucket=self.bucket, Key=staged)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                    return False
                raise
            body = answer["Body"]
            try:
                written = 0
                with dest.open("wb") as out:
                    for chunk in body.iter_chunks(READ_CHUNK):
                        written += len(chunk)
                        if written > limit:  # the policy bounds it: never trust one source
                            raise UploadStorageError(f"{staged} is over {limit} bytes")
                        out.write(chunk)
            finally:
                body.close()
        return True

    def publish(
        self, key: str, source: Path, content_type: str, *, file_name: str | None = None
    ) -> bool:
        from botocore.exceptions import ClientError

        with _s3_errors(f"publishing s3://{self.bucket}/{key}"), source.open("rb") as data:
            try:
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=data,
                    ContentType=content_type,
                    ContentDisposition=content_disposition(file_name),
                    CacheControl="public, max-age=31536000, immutable",
                    # a published file never changes (S3 answers 412 when it exists)
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in {"PreconditionFailed", "412"}:
                    return False
                raise
        self._delete([staging_key(key)])
        return True

    def delete_keys(self, keys: Collection[str]) -> int:
        ours = [key for key in keys if parse_key(key) is not None]
        for start in range(0, len(ours), DELETE_BATCH // 2):
            batch = ours[start : start + DELETE_BATCH // 2]
            self._delete(batch + [staging_key(key) for key in batch])
        return len(ours)

    # -- a couple's files (blocking: see UploadBackend) ------------------------------------

    def iter_keys(self, couple_id: uuid.UUID) -> Iterator[str]:
        prefix = f"{couple_id}/"
        with _s3_errors(f"listing s3://{self.bucket}/{prefix}"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:  # one request per page (up to 1000 keys), as it is consumed
                for item in page.get("Contents", ()):
                    key = str(item["Key"])
                    if parse_key(key) == couple_id:
                        yield key

    def open_file(self, key: str) -> StoredFile | None:
        from botocore.exceptions import ClientError

        if parse_key(key) is None:
            raise ValueError(f"not an upload key: {key[:100]!r}")
        with _s3_errors(f"reading s3://{self.bucket}/{key}"):
            try:
                answer = self._client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                    return None
                raise
        body = answer["Body"]
        return StoredFile(
            key,
            int(answer["ContentLength"]),
            answer["LastModified"].timestamp(),
            self._chunks(body, key),
            body.close,
        )

    def _chunks(self, body: Any, key: str) -> Iterator[bytes]:
        with _s3_errors(f"reading s3://{self.bucket}/{key}"):
            yield from body.iter_chunks(READ_CHUNK)

    def delete_files(self, couple_id: uuid.UUID) -> int:
        """Also deletes what was uploaded for the couple and never checked."""
        deleted = 0
        self._delete_prefix(f"{STAGING}{couple_id}/")
        batch: list[str] = []
        for key in self.iter_keys(couple_id):
            batch.append(key)
            if len(batch) == DELETE_BATCH:
                deleted += self._delete(batch)
                batch = []
        if batch:
            deleted += self._delete(batch)
        return deleted

    def _delete_prefix(self, prefix: str) -> None:
        with _s3_errors(f"listing s3://{self.bucket}/{prefix}"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                keys = [str(item["Key"]) for item in page.get("Contents", ())]
                if keys:
                    self._delete(keys)

    def _delete(self, keys: list[str]) -> int:
        """One DeleteObjects request. S3 answers a key that is not there as deleted, which
        is what makes a repeated purge harmless."""
        with _s3_errors(f"deleting {len(keys)} files from s3://{self.bucket}"):
            answer = self._client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
            )
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise UploadStorageError(
                f"S3 did not delete {len(errors)} of {len(keys)} files of s3://{self.bucket}, "
                f"first {first.get('Key')}: {first.get('Code')} {first.get('Message')}"
            )
        return len(keys)


@contextmanager
def _s3_errors(what: str) -> Iterator[None]:
    """botocore's errors (S3 refusing, unreachable, a stream cut) as
    :class:`UploadStorageError`."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise UploadStorageError(f"{what}: {exc}") from exc


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
