"""Presigned uploads with the local backend, in-process: presign, the signed PUT (and the
check it runs), serving, and IMAGE messages that must name an uploaded file."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from ieum_chat.media_types import Kind
from ieum_chat.uploads import LocalUploads
from tests.support import media
from tests.unit.api.conftest import PUBLIC_URL, Api


def made(make: Callable[[Path], Path]) -> bytes:
    """The bytes of a file ``make`` writes (real images: the PUT decodes them)."""
    with tempfile.TemporaryDirectory() as folder:
        return make(Path(folder) / "file").read_bytes()


# Without EXIF: stored as sent, byte for byte.
PNG = made(media.png)
JPEG = made(lambda path: media.jpeg(path, gps=False, orientation=None))
GIF = made(media.gif)
WEBP = made(media.webp)


async def presign(api: Api, content_type: str, size: int, **extra: Any) -> httpx.Response:
    return await api.client.post(
        api.room("/uploads"),
        json={"contentType": content_type, "size": size, **extra},
        headers=api.auth(),
    )


async def ticket(api: Api, content_type: str, size: int) -> dict[str, Any]:
    response = await presign(api, content_type, size)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def put(api: Api, url: str, data: bytes, content_type: str) -> httpx.Response:
    return await api.client.put(url, content=data, headers={"Content-Type": content_type})


def backend(api: Api) -> LocalUploads:
    uploads = api.chat.uploads
    assert isinstance(uploads, LocalUploads)
    return uploads


def with_query(url: str, **changes: object) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update({k: str(v) for k, v in changes.items()})
    return parts._replace(query=urlencode(query)).geturl()


def error_code(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    code: str = response.json()["code"]
    return code


@pytest.mark.parametrize(
    ("content_type", "data"),
    [("image/png", PNG), ("image/jpeg", JPEG), ("image/gif", GIF), ("image/webp", WEBP)],
)
async def test_upload_round_trip(api: Api, content_type: str, data: bytes) -> None:
    t = await ticket(api, content_type, len(data))
    assert t["method"] == "PUT"
    assert t["headers"] == {"Content-Type": content_type}
    assert t["fields"] == {}
    assert t["imageUrl"].startswith(f"{PUBLIC_URL}/uploads/{api.couple.id}/")
    assert t["uploadUrl"].startswith(t["imageUrl"] + "?")
    assert 0 < t["expiresIn"] <= api.settings.upload_ttl
    done = await put(api, t["uploadUrl"], data, content_type)
    assert done.status_code == 201, done.text
    result = done.json()
    assert result["uploadId"] == t["uploadId"]
    assert (result["kind"], result["contentType"]) == ("IMAGE", content_type)
    assert result["imageUrl"] == result["mediaUrl"] == t["imageUrl"]
    assert result["size"] == len(data)
    assert result["thumbnailUrl"].endswith(".thumb.webp")
    served = await api.client.get(t["imageUrl"])
    assert served.status_code == 200
    assert served.content == data
    assert served.headers["content-type"] == content_type
    assert served.headers["x-content-type-options"] == "nosniff"
    message = await api.send(type="IMAGE", imageUrl=t["imageUrl"], content="캡션", tempId="img")
    assert message.status_code == 201, message.text
    assert message.json()["imageUrl"] == t["imageUrl"]


async def test_a_smaller_file_than_declared_is_accepted(api: Api) -> None:
    t = await ticket(api, "image/png", len(PNG) + 100)
    assert (await put(api, t["uploadUrl"], PNG, "image/png")).status_code == 201


# -- presign refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["image/svg+xml", "text/html", "application/octet-stream", "", "image/"]
)
async def test_presign_of_a_type_we_refuse_is_415(api: Api, content_type: str) -> None:
    response = await presign(api, content_type, 100)
    assert error_code(response, 415) == "UNSUPPORTED_MEDIA_TYPE"


async def test_presign_over_the_size_limit_is_413(api: Api) -> None:
    response = await presign(api, "image/png", api.settings.upload_max_bytes[Kind.IMAGE] + 1)
    assert error_code(response, 413) == "PAYLOAD_TOO_LARGE"
    assert (
        await presign(api, "image/png", api.settings.upload_max_bytes[Kind.IMAGE])
    ).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"contentType": "image/png", "size": 0},
        {"contentType": "image/png", "size": -1},
        {"contentType": "image/png", "size": "10"},
        {"contentType": "image/png", "size": 1.5},
        {"contentType": "image/png"},
        {"size": 10},
        {"contentType": 7, "size": 10},
        [],
        "x",
    ],
)
async def test_malformed_presign_request_is_400(api: Api, body: object) -> None:
    response = await api.client.post(api.room("/uploads"), json=body, headers=api.auth())
    assert error_code(response, 400) == "BAD_REQUEST"


# -- the signed PUT ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"size": 10_000_000},
        {"type": "image/jpeg"},
        {"expires": int(time.time()) + 10**6},
        {"sig": "A" * 43},
    ],
)
async def test_tampered_upload_url_is_403(api: Api, change: dict[str, object]) -> None:
    t = await ticket(api, "image/png", len(PNG))
    content_type = str(change.get("type", "image/png"))
    response = await put(api, with_query(t["uploadUrl"], **change), PNG, content_type)
    assert error_code(response, 403) == "SIGNATURE_INVALID"
    assert (await api.client.get(t["imageUrl"])).status_code == 404


async def test_upload_url_for_another_key_is_403(api: Api) -> None:
    t = await ticket(api, "image/png", len(PNG))
    query = urlsplit(t["uploadUrl"]).query
    for key in (
        f"{api.couple.id}/{uuid.uuid4().hex}.png",
        f"{api.other.id}/{urlsplit(t['imageUrl']).path.rsplit('/', 1)[1]}",
    ):
        response = await put(api, f"{PUBLIC_URL}/uploads/{key}?{query}", PNG, "image/png")
        assert error_code(response, 403) == "SIGNATURE_INVALID"


async def test_expired_upload_url_is_403(api: Api) -> None:
    old = backend(api).presign(api.couple.id, "image/png", len(PNG), now=time.time() - 3600)
    response = await put(api, old.upload_url, PNG, "image/png")
    assert error_code(response, 403) == "SIGNATURE_INVALID"
    assert "expired" in response.json()["detail"]


async def test_upload_larger_than_declared_is_413(api: Api) -> None:
    t = await ticket(api, "image/png", 100)
    response = await put(api, t["uploadUrl"], PNG, "image/png")
    assert error_code(response, 413) == "PAYLOAD_TOO_LARGE"


async def test_upload_streamed_past_the_declared_size_is_413(api: Api) -> None:
    t = await ticket(api, "image/png", 100)

    async def chunks() -> Any:
        for _ in range(10):
            yield PNG[:64]

    response = await api.client.put(
        t["uploadUrl"], content=chunks(), headers={"Content-Type": "image/png"}
    )
    assert error_code(response, 413) == "PAYLOAD_TOO_LARGE"


async def test_upload_with_another_content_type_is_415(api: Api) -> None:
    t = await ticket(api, "image/png", len(PNG))
    for header in ("image/jpeg", "text/html", ""):
        response = await put(api, t["uploadUrl"], PNG, header)
        assert error_code(response, 415) == "UNSUPPORTED_MEDIA_TYPE"


async def test_upload_whose_bytes_are_not_the_declared_type_is_415(api: Api) -> None:
    """Refused on the first bytes, before anything is decoded."""
    html = b"<html><script>alert(1)</script></html>"
    t = await ticket(api, "image/png", len(html))
    response = await put(api, t["uploadUrl"], html, "image/png")
    assert error_code(response, 415) == "UNSUPPORTED_MEDIA_TYPE"
    t = await ticket(api, "image/png", len(JPEG))
    response = await put(api, t["uploadUrl"], JPEG, "image/png")
    assert error_code(response, 415) == "UNSUPPORTED_MEDIA_TYPE"


async def test_empty_upload_is_400(api: Api) -> None:
    t = await ticket(api, "image/png", 10)
    response = await put(api, t["uploadUrl"], b"", "image/png")
    assert error_code(response, 400) == "BAD_REQUEST"


async def test_upload_without_the_signature_query_is_400(api: Api) -> None:
    t = await ticket(api, "image/png", len(PNG))
    response = await put(api, t["imageUrl"], PNG, "image/png")
    assert error_code(response, 400) == "BAD_REQUEST"


# -- serving -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/uploads/../chat.db",
        "/uploads/%2e%2e/chat.db",
        "/uploads/..%2fchat.db",
        "/uploads/x/..%2f..%2fchat.db",
        "/uploads/{couple}/..%2f..%2fchat.db",
        "/uploads/{couple}/%2e%2e",
        "/uploads/{couple}/.upload-x.part",
        "/uploads/{couple}/0123456789abcdef0123456789abcdef.PNG",
        "/uploads/{couple}/0123456789abcdef0123456789abcdef.png",
        "/uploads/{couple}/0123456789abcdef0123456789abcdef.html",
    ],
)
async def test_no_file_outside_the_uploads_is_served(api: Api, path: str) -> None:
    response = await api.client.get(path.format(couple=api.couple.id))
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("headers", "status", "part"),
    [
        ({}, 200, slice(None)),
        ({"Range": "bytes=100-199"}, 206, slice(100, 200)),
        ({"Range": "bytes=0-9, 50-59"}, 206, None),  # multipart/byteranges: both parts in it
    ],
)
async def test_a_file_deleted_while_it_is_served_still_goes_out_whole(
    api: Api, headers: dict[str, str], status: int, part: slice | None
) -> None:
    # Unsending a message or erasing a couple deletes files that a partner may be
    # downloading: the download started gets what its headers promised.
    t = await ticket(api, "image/png", len(PNG))
    assert (await put(api, t["uploadUrl"], PNG, "image/png")).status_code == 201
    path = backend(api).path_for(urlsplit(t["imageUrl"]).path.removeprefix("/uploads/"))
    assert path is not None
    assert path.is_file()

    async def deleting(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_then_delete(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.start":
                path.unlink()

        await api.app(scope, receive, send_then_delete)

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=deleting), base_url=PUBLIC_URL
    ) as client:
        served = await client.get(t["imageUrl"], headers=headers)
    assert not path.exists()
    assert served.status_code == status
    assert int(served.headers["content-length"]) == len(served.content)
    if part is not None:
        assert served.content == PNG[part]
    else:
        assert PNG[0:10] in served.content
        assert PNG[50:60] in served.content
    assert (await api.client.get(t["imageUrl"])).status_code == 404


# -- IMAGE messages must name one of our files -----------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example/p.png",
        "https://evil.example/x.png",
        f"{PUBLIC_URL}/uploads/{{couple}}/0123456789abcdef0123456789abcdef.png",  # not uploaded
        f"{PUBLIC_URL}/uploads/{{couple}}/../../etc/passwd",
        f"{PUBLIC_URL}.evil.example/uploads/{{couple}}/0123456789abcdef0123456789abcdef.png",
    ],
)
async def test_image_of_a_foreign_or_unknown_file_is_refused(api: Api, url: str) -> None:
    response = await api.send(type="IMAGE", imageUrl=url.format(couple=api.couple.id), tempId="i")
    assert error_code(response, 400) == "SEND_FAILED"
    assert response.json()["tempId"] == "i"
    assert "imageUrl" in response.json()["detail"]


async def test_image_uploaded_for_another_couple_is_refused(api: Api) -> None:
    member = await api.db.get_user(api.other.user1_id)
    assert member is not None
    asked = await api.client.post(
        api.room("/uploads", api.other),
        json={"contentType": "image/png", "size": len(PNG)},
        headers=api.auth(member),
    )
    t = asked.json()
    assert (await put(api, t["uploadUrl"], PNG, "image/png")).status_code == 201
    response = await api.send(type="IMAGE", imageUrl=t["imageUrl"])
    assert error_code(response, 400) == "SEND_FAILED"


async def test_integral_size_written_with_a_fraction_is_accepted(api: Api) -> None:
    response = await api.client.post(
        api.room("/uploads"),
        content=b'{"contentType": "image/png", "size": 100.0}',
        headers={**api.auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
