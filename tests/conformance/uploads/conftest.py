"""One upload suite, every backend: each test taking ``uploads`` (or ``backend``) runs against
the local folder backend and the S3 backend.

The S3 backend talks to a real S3-protocol server (the ``s3_server`` fixture: moto's, in a
thread of the test process, on a free loopback port), one fresh bucket per test, with made-up
credentials (``fake_aws``). Files reach it as a client sends them, by the presigned POST form;
the local backend gets them through its signed PUT's checks and :meth:`LocalUploads.store`.
What boto3 signs is checked offline in ``test_uploads_s3.py``.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from ieum_chat.uploads import LocalUploads, UploadBackend, UploadTicket
from ieum_chat.uploads.local import derive_key

if TYPE_CHECKING:
    from ieum_chat.uploads.s3 import S3Uploads

REGION = "ap-northeast-2"
BUCKET = "ieum-chat-test"
MAX_BYTES = 1024 * 1024
TTL = 600


def make_s3(bucket: str = BUCKET, **options: str) -> S3Uploads:
    from ieum_chat.uploads.s3 import S3Uploads

    return S3Uploads(bucket, max_bytes=MAX_BYTES, ttl=TTL, region=REGION, **options)


@dataclass
class S3Bucket:
    uploads: S3Uploads
    client: Any
    """The test's own boto3 client of the bucket (to set up and to look, past the backend)."""


@pytest.fixture
def s3_bucket(s3_server: str, fake_aws: None) -> S3Bucket:
    """An S3 backend on a fresh bucket of ``s3_server``. Image URLs get a public base
    of their own (a CDN's), as in production, so that they differ from the bucket's."""
    import boto3

    bucket = f"ieum-chat-{uuid.uuid4().hex[:12]}"
    client = boto3.session.Session().client("s3", region_name=REGION, endpoint_url=s3_server)
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    uploads = make_s3(bucket, endpoint_url=s3_server, public_url="https://img.ieum.example")
    return S3Bucket(uploads, client)


def make_local(root: Path) -> LocalUploads:
    return LocalUploads(
        root,
        base_url="https://chat.example",
        signing_key=derive_key("a-secret-for-the-upload-tests-0123456789"),
        max_bytes=MAX_BYTES,
        ttl=TTL,
    )


@dataclass
class Backend:
    name: str
    uploads: UploadBackend
    complete: Callable[[UploadTicket, bytes], None]
    """Do what the client does with a ticket (upload the file), then what the server does
    once it is checked (publish it)."""
    plant: Callable[[str, bytes], None]
    """Put bytes at a raw key of the storage, past every check (what another writer, an
    operator say, could leave there)."""
    exists: Callable[[str], bool]
    """Whether the storage holds something at a raw key."""


def _complete_local(uploads: LocalUploads) -> Callable[[UploadTicket, bytes], None]:
    def complete(ticket: UploadTicket, data: bytes) -> None:
        from urllib.parse import parse_qs, urlsplit

        key = uploads.key_of(ticket.image_url)
        assert key is not None
        query = {k: v[0] for k, v in parse_qs(urlsplit(ticket.upload_url).query).items()}
        uploads.verify(
            key,
            query["type"],
            int(query["size"]),
            int(query["expires"]),
            query["sig"],
            now=ticket.expires_at - 1,
        )
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "upload"
            path.write_bytes(data)
            assert uploads.publish(key, path, query["type"])

    return complete


def _plant_local(root: Path) -> Callable[[str, bytes], None]:
    def plant(key: str, data: bytes) -> None:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return plant


def post_form(ticket: UploadTicket, data: bytes) -> httpx.Response:
    """The presigned POST, as a browser's form upload sends it."""
    assert ticket.method == "POST"
    return httpx.post(
        ticket.upload_url,
        data=ticket.fields,
        files={"file": ("image", data, ticket.fields["Content-Type"])},
        timeout=30,
    )


def _complete_s3(uploads: S3Uploads) -> Callable[[UploadTicket, bytes], None]:
    """The client's POST, then the server's fetch of the staged file and its publication."""

    def complete(ticket: UploadTicket, data: bytes) -> None:
        response = post_form(ticket, data)
        assert response.status_code in {200, 201, 204}, response.text
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "upload"
            assert uploads.fetch_upload(ticket.key, path, len(data))
            assert path.read_bytes() == data
            assert uploads.publish(ticket.key, path, ticket.fields["Content-Type"])

    return complete


def _plant_s3(s3: S3Bucket) -> Callable[[str, bytes], None]:
    def plant(key: str, data: bytes) -> None:
        s3.client.put_object(Bucket=s3.uploads.bucket, Key=key, Body=data)

    return plant


def _exists_s3(s3: S3Bucket) -> Callable[[str], bool]:
    def exists(key: str) -> bool:
        listed = s3.client.list_objects_v2(Bucket=s3.uploads.bucket, Prefix=key)
        return any(item["Key"] == key for item in listed.get("Contents", ()))

    return exists


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "local":
        root = tmp_path / "uploads"
        local = make_local(root)
        exists: Callable[[str], bool] = lambda key: (root / key).exists()  # noqa: E731
        yield Backend("local", local, _complete_local(local), _plant_local(root), exists)
        return
    s3: S3Bucket = request.getfixturevalue("s3_bucket")
    yield Backend("s3", s3.uploads, _complete_s3(s3.uploads), _plant_s3(s3), _exists_s3(s3))


@pytest.fixture
def uploads(backend: Backend) -> UploadBackend:
    return backend.uploads
