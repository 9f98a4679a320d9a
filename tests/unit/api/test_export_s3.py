"""GET /chat/export with the S3 backend (moto's S3 server): the couple's files are read from
the bucket into ``media/``."""

from __future__ import annotations

import io
import os
import uuid
import zipfile
from typing import Any

import httpx
import pytest

from ieum_chat.store import Couple
from tests.support.uploads import png_bytes
from tests.unit.api.conftest import Api

REGION = "ap-northeast-2"
PNG = png_bytes()


@pytest.fixture
def bucket(s3_server: str, fake_aws: None) -> str:
    import boto3

    name = f"ieum-export-{uuid.uuid4().hex[:12]}"
    client = boto3.session.Session().client("s3", region_name=REGION, endpoint_url=s3_server)
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


@pytest.fixture
def settings_overrides(bucket: str, s3_server: str) -> dict[str, Any]:
    return {"s3_bucket": bucket, "s3_region": REGION, "s3_endpoint_url": s3_server}


async def upload(api: Api, data: bytes, couple: Couple | None = None) -> str:
    """Upload ``data`` as a member of ``couple`` (the api's by default) does with an S3
    ticket: the presigned POST form, then ``completeUrl``."""
    member = await api.db.get_user(couple.user1_id) if couple is not None else api.a
    assert member is not None
    response = await api.client.post(
        api.room("/uploads", couple),
        json={"contentType": "image/png", "size": len(data)},
        headers=api.auth(member),
    )
    ticket = response.json()
    assert ticket["method"] == "POST", ticket
    async with httpx.AsyncClient() as s3:
        posted = await s3.post(
            ticket["uploadUrl"],
            data=ticket["fields"],
            files={"file": ("image", data, "image/png")},
        )
    assert posted.status_code in {200, 201, 204}, posted.text
    done = await api.client.post(ticket["completeUrl"], headers=api.auth(member))
    assert done.status_code == 200, done.text
    name: str = ticket["mediaUrl"].rsplit("/", 1)[1]
    return name


async def test_the_archive_holds_the_couples_files_from_the_bucket(api: Api) -> None:
    files = {await upload(api, data): data for data in (PNG + b"x", PNG + os.urandom(300_000))}
    theirs = await upload(api, PNG + b"theirs", api.other)  # the same bucket
    sent = await api.send(type="TEXT", content="버킷에서")
    assert sent.status_code == 201, sent.text

    response = await api.client.get("/chat/export", headers=api.auth())
    assert response.status_code == 200, response.text
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    assert [line for line in archive.read("messages.jsonl").splitlines() if line]
    media = {name.removeprefix("media/"): archive.read(name) for name in archive.namelist()[1:]}
    assert media == files
    assert theirs not in media
