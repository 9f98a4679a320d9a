"""One upload suite, every backend: each test taking ``uploads`` runs against the local folder
backend and the S3 backend.

S3 presigning is local computation (SigV4 over a POST policy), so the S3 backend runs for real
here with made-up credentials and no network: what is checked is what boto3 signs. The actual
upload to a bucket is out of reach of this machine and is not imitated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ieum_chat.uploads import LocalUploads, UploadBackend, UploadTicket
from ieum_chat.uploads.local import derive_key

FAKE_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
FAKE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "ap-northeast-2"
BUCKET = "ieum-chat-test"
MAX_BYTES = 1024 * 1024
TTL = 600


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """boto3's credential chain finds the fake keys in the environment and nothing else."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def make_s3(**options: str) -> UploadBackend:
    from ieum_chat.uploads.s3 import S3Uploads

    return S3Uploads(BUCKET, max_bytes=MAX_BYTES, ttl=TTL, region=REGION, **options)


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
    """Do what the client does with a ticket (S3: nothing can be done offline)."""


def _complete_local(uploads: LocalUploads) -> Callable[[UploadTicket, bytes], None]:
    def complete(ticket: UploadTicket, data: bytes) -> None:
        import asyncio
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
        asyncio.run(uploads.store(key, data))

    return complete


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "local":
        local = make_local(tmp_path / "uploads")
        yield Backend("local", local, _complete_local(local))
        return
    request.getfixturevalue("fake_aws")
    yield Backend("s3", make_s3(), lambda ticket, data: None)


@pytest.fixture
def uploads(backend: Backend) -> UploadBackend:
    return backend.uploads
