"""Media uploads with the S3 backend (moto's S3 server): the client's form POST lands on a
staging key nobody serves; ``completeUrl`` makes the server fetch it, check it and publish
the file (an EXIF-free copy of a photo) and its thumbnail at the keys their URLs name."""

from __future__ import annotations

import asyncio
import io
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.support import media
from tests.unit.api.conftest import Api

REGION = "ap-northeast-2"
Reader = Callable[[str], dict[str, Any] | None]


@pytest.fixture
def bucket(s3_server: str, fake_aws: None) -> str:
    import boto3

    name = f"ieum-media-{uuid.uuid4().hex[:12]}"
    client = boto3.session.Session().client("s3", region_name=REGION, endpoint_url=s3_server)
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


@pytest.fixture
def objects(bucket: str, s3_server: str) -> Callable[[str], dict[str, Any] | None]:
    """Read an object of the bucket by its URL, as an authorised reader (the bucket is
    private: a CDN's reader, say); ``None`` when there is none."""
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.session.Session().client("s3", region_name=REGION, endpoint_url=s3_server)

    def read(url: str) -> dict[str, Any] | None:
        key = url.split(f"/{bucket}/", 1)[1]
        try:
            answer: dict[str, Any] = client.get_object(Bucket=bucket, Key=key)
        except ClientError:
            return None
        answer["data"] = answer["Body"].read()
        return answer

    return read


@pytest.fixture
def settings_overrides(bucket: str, s3_server: str) -> dict[str, Any]:
    return {"s3_bucket": bucket, "s3_region": REGION, "s3_endpoint_url": s3_server}


async def post_form(ticket: dict[str, Any], data: bytes, content_type: str) -> None:
    assert ticket["method"] == "POST", ticket
    async with httpx.AsyncClient() as s3:
        posted = await s3.post(
            ticket["uploadUrl"], data=ticket["fields"], files={"file": ("f", data, content_type)}
        )
    assert posted.status_code in {200, 201, 204}, posted.text


async def ticket(api: Api, content_type: str, size: int, **extra: Any) -> dict[str, Any]:
    response = await api.client.post(
        api.room("/uploads"),
        json={"contentType": content_type, "size": size, **extra},
        headers=api.auth(),
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_a_photo_is_checked_and_published_on_completion(
    api: Api, tmp_path: Path, objects: Reader
) -> None:
    photo = media.jpeg(tmp_path / "p.jpg", size=(800, 600), gps=True)
    data = await asyncio.to_thread(photo.read_bytes)
    t = await ticket(api, "image/jpeg", len(data))
    assert t["fields"]["key"].startswith("staging/")
    early = await api.client.post(t["completeUrl"], headers=api.auth())
    assert (early.status_code, early.json()["code"]) == (409, "CONFLICT")
    await post_form(t, data, "image/jpeg")

    assert objects(t["mediaUrl"]) is None  # not before the check
    done = await api.client.post(t["completeUrl"], headers=api.auth())
    assert done.status_code == 200, done.text
    result = done.json()
    # held upright (EXIF orientation 6): the stored photo is turned
    assert (result["mediaUrl"], result["width"], result["height"]) == (t["mediaUrl"], 600, 800)
    again = await api.client.post(t["completeUrl"], headers=api.auth())
    assert again.json() == result  # idempotent

    served = objects(result["mediaUrl"])
    assert served is not None
    assert (served["ContentType"], served["ContentDisposition"]) == ("image/jpeg", "inline")
    assert Image.open(io.BytesIO(served["data"])).getexif() == {}
    thumb = objects(result["thumbnailUrl"])
    assert thumb is not None
    assert thumb["ContentType"] == "image/webp"
    assert max(Image.open(io.BytesIO(thumb["data"])).size) == 320
    assert (
        objects(t["mediaUrl"].replace(f"/{t['fields']['key'][8:]}", "/" + t["fields"]["key"]))
        is None
    )

    sent = await api.send(type="IMAGE", imageUrl=result["mediaUrl"], tempId="s3")
    assert sent.status_code == 201, sent.text
    assert sent.json()["thumbnailUrl"] == result["thumbnailUrl"]


async def test_a_file_is_published_as_an_attachment_under_its_name(
    api: Api, tmp_path: Path, objects: Reader
) -> None:
    name = '사진 모음 "여름".zip'
    data = await asyncio.to_thread(media.zip_archive(tmp_path / "a.zip").read_bytes)
    t = await ticket(api, "application/zip", len(data), fileName=name)
    await post_form(t, data, "application/zip")
    done = await api.client.post(t["completeUrl"], headers=api.auth())
    assert done.status_code == 200, done.text
    served = objects(t["mediaUrl"])
    assert served is not None
    disposition = served["ContentDisposition"]
    assert disposition.startswith("attachment; ")
    assert urllib.parse.unquote(disposition.split("filename*=UTF-8''", 1)[1]) == name


async def test_a_staged_file_that_is_not_what_it_says_is_refused(
    api: Api, tmp_path: Path, objects: Reader
) -> None:
    data = await asyncio.to_thread(media.html_as_png(tmp_path / "x.png").read_bytes)
    t = await ticket(api, "image/png", len(data))
    await post_form(t, data, "image/png")
    refused = await api.client.post(t["completeUrl"], headers=api.auth())
    assert (refused.status_code, refused.json()["code"]) == (415, "UNSUPPORTED_MEDIA_TYPE")
    assert objects(t["mediaUrl"]) is None
    sent = await api.send(type="IMAGE", imageUrl=t["mediaUrl"])
    assert sent.json()["code"] == "SEND_FAILED"
