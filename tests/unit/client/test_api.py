"""ChatApi.upload over httpx's MockTransport: the three requests of an upload as the server
(or object storage) expects them, and each refusal as its exception."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from ieum_chat.client import (
    ChatApi,
    QuotaExceeded,
    UnsupportedMedia,
    UploadError,
    UploadResult,
    UploadTooLarge,
)

BASE = "http://chat.test"
ROOM = "4b0c8400-e29b-41d4-a716-446655440000"
TOKEN = "jwt-1"
NOTE = b"\x1aE\xdf\xa3" + bytes(range(256)) * 4  # an EBML head, then anything

PRESIGN = ("POST", f"{BASE}/chat/rooms/{ROOM}/uploads")
PUT = ("PUT", f"{BASE}/uploads/{ROOM}/n.weba")
COMPLETE = ("POST", f"{BASE}/chat/rooms/{ROOM}/uploads/u-1/complete")
BUCKET = ("POST", "https://bucket.s3.test/")


class FakeServer:
    """The upload API of one server (PUT tickets), or of one with object storage (POST
    tickets to another host); every request kept."""

    def __init__(self, method: str = "PUT", kind: str = "AUDIO") -> None:
        self.method = method
        self.kind = kind
        self.requests: list[httpx.Request] = []
        self.declared: dict[str, Any] = {}
        # A step answered otherwise: (method, URL without its query) -> response.
        self.refuse: dict[tuple[str, str], httpx.Response] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        refused = self.refuse.get((request.method, str(request.url.copy_with(query=None))))
        if refused is not None:
            return refused
        if request.url.path == f"/chat/rooms/{ROOM}/uploads":
            self.declared = json.loads(request.content)
            return httpx.Response(200, json=self.ticket())
        if request.url.path.endswith("/complete"):
            return httpx.Response(200, json=self.result())
        if request.method in ("PUT", "POST"):
            return httpx.Response(201 if request.method == "PUT" else 204)
        return httpx.Response(404)

    def ticket(self) -> dict[str, Any]:
        local = self.method == "PUT"
        return {
            "uploadId": "u-1",
            "kind": self.kind,
            "method": self.method,
            "uploadUrl": f"{BASE}/uploads/{ROOM}/n.weba?sig=s"
            if local
            else "https://bucket.s3.test/",
            "headers": {"Content-Type": self.declared["contentType"]} if local else {},
            "fields": {}
            if local
            else {"key": f"{ROOM}/f.pdf", "Content-Type": self.declared["contentType"]}
            | {"policy": "cG9saWN5", "x-amz-signature": "sig"},
            "expiresAt": "2026-12-02T21:00:00",
            "expiresIn": 3600,
            "mediaUrl": f"{BASE}/uploads/{ROOM}/n.weba",
            "imageUrl": None,
            "completeUrl": f"/chat/rooms/{ROOM}/uploads/u-1/complete",
        }

    def result(self) -> dict[str, Any]:
        return {
            "uploadId": "u-1",
            "kind": self.kind,
            "contentType": self.declared["contentType"],
            "size": self.declared["size"],
            "mediaUrl": f"{BASE}/uploads/{ROOM}/n.weba",
            "imageUrl": None,
            "thumbnailUrl": None,
            "durationMs": 3250 if self.kind == "AUDIO" else None,
            "width": None,
            "height": None,
            "fileName": self.declared.get("fileName"),
        }


def api(server: FakeServer) -> ChatApi:
    async def token() -> str:
        return TOKEN

    return ChatApi(BASE, token, transport=httpx.MockTransport(server))


async def test_a_local_upload_is_presign_put_complete() -> None:
    server = FakeServer()
    async with api(server) as client:
        result = await client.upload(ROOM, NOTE, "audio/webm")
    assert isinstance(result, UploadResult)
    assert (result.kind, result.duration_ms, result.size) == ("AUDIO", 3250, len(NOTE))
    presign, put, complete = server.requests
    assert (presign.method, presign.url.path) == ("POST", f"/chat/rooms/{ROOM}/uploads")
    assert json.loads(presign.content) == {"contentType": "audio/webm", "size": len(NOTE)}
    assert (put.method, put.url.params["sig"]) == ("PUT", "s")
    assert put.headers["content-type"] == "audio/webm"
    assert put.content == NOTE
    assert (complete.method, complete.url.path, complete.content) == (
        "POST",
        f"/chat/rooms/{ROOM}/uploads/u-1/complete",
        b"",
    )
    # The token goes to the API, never to an upload URL (it is signed by itself).
    assert [r.headers.get("authorization") for r in server.requests] == [
        f"Bearer {TOKEN}",
        None,
        f"Bearer {TOKEN}",
    ]


async def test_an_s3_upload_posts_the_fields_then_the_file(tmp_path: Path) -> None:
    server = FakeServer("POST", kind="FILE")
    document = tmp_path / "여행 일정표.pdf"
    document.write_bytes(b"%PDF-1.7\n" + b"x" * 3000)
    async with api(server) as client:
        result = await client.upload(ROOM, document, "application/pdf")
    # A document's path names it (what the FILE message shows).
    assert server.declared["fileName"] == "여행 일정표.pdf" == result.file_name
    form = server.requests[1]
    assert (form.method, form.url.host, form.headers.get("authorization")) == (
        "POST",
        "bucket.s3.test",
        None,
    )
    assert form.headers["content-type"].startswith("multipart/form-data; boundary=")
    body = form.content
    names = [b'name="key"', b'name="Content-Type"', b'name="policy"', b'name="x-amz-signature"']
    positions = [body.index(name) for name in [*names, b'name="file"']]
    assert positions == sorted(positions)  # object storage ignores fields after the file
    assert body.index(b"%PDF-1.7") > positions[-1]


async def test_a_media_path_is_not_named_unless_asked(tmp_path: Path) -> None:
    server = FakeServer()
    note = tmp_path / "note.weba"
    note.write_bytes(NOTE)
    async with api(server) as client:
        await client.upload(ROOM, note, "audio/webm")
        assert "fileName" not in server.declared
        await client.upload(ROOM, NOTE, "audio/webm", file_name="memo.weba")
        assert server.declared["fileName"] == "memo.weba"


async def test_nothing_to_upload_is_refused_before_any_request() -> None:
    server = FakeServer()
    async with api(server) as client:
        with pytest.raises(ValueError, match="one byte"):
            await client.upload(ROOM, b"", "audio/webm")
    assert server.requests == []


def error(status: int, code: str, detail: str, **headers: str) -> httpx.Response:
    body = {"type": "ERROR", "code": code, "message": "업로드할 수 없습니다", "detail": detail}
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("step", "response", "kind", "code"),
    [
        (
            PRESIGN,
            error(413, "PAYLOAD_TOO_LARGE", "audio is limited to 20 MiB"),
            UploadTooLarge,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            PRESIGN,
            error(415, "UNSUPPORTED_MEDIA_TYPE", "audio/flac is not accepted"),
            UnsupportedMedia,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            PUT,
            error(415, "UNSUPPORTED_MEDIA_TYPE", "the file is not audio/webm"),
            UnsupportedMedia,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            COMPLETE,
            error(415, "UNSUPPORTED_MEDIA_TYPE", "ffprobe found no audio stream"),
            UnsupportedMedia,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            COMPLETE,
            error(409, "CONFLICT", "nothing was uploaded yet"),
            UploadError,
            "CONFLICT",
        ),
        (
            PUT,
            httpx.Response(502, text="<html>Bad Gateway</html>"),
            UploadError,
            "UNEXPECTED",
        ),
    ],
    ids=["413", "415-presign", "415-put", "415-complete", "409-complete", "502"],
)
async def test_a_refused_step_raises_with_the_servers_code(
    step: tuple[str, str], response: httpx.Response, kind: type[UploadError], code: str
) -> None:
    server = FakeServer()
    server.refuse[step] = response
    async with api(server) as client:
        with pytest.raises(kind) as caught:
            await client.upload(ROOM, NOTE, "audio/webm")
    assert type(caught.value) is kind
    assert (caught.value.status, caught.value.code) == (response.status_code, code)
    if code != "UNEXPECTED":
        assert caught.value.detail == response.json()["detail"]
        assert caught.value.detail in str(caught.value)


async def test_the_daily_quota_says_when_to_try_again() -> None:
    server = FakeServer()
    server.refuse[PRESIGN] = error(429, "QUOTA_EXCEEDED", "1 GiB a day", **{"Retry-After": "5400"})
    async with api(server) as client:
        with pytest.raises(QuotaExceeded) as caught:
            await client.upload(ROOM, NOTE, "audio/webm")
    assert (caught.value.code, caught.value.retry_after) == ("QUOTA_EXCEEDED", 5400.0)


async def test_object_storage_refusals_are_read_from_its_xml() -> None:
    server = FakeServer("POST", kind="FILE")
    xml = (
        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>EntityTooLarge</Code>'
        b"<Message>Your proposed upload exceeds the maximum allowed size</Message></Error>"
    )
    server.refuse[BUCKET] = httpx.Response(400, content=xml)
    async with api(server) as client:
        with pytest.raises(UploadTooLarge, match="exceeds the maximum") as caught:
            await client.upload(ROOM, b"%PDF-1.7", "application/pdf", file_name="a.pdf")
    assert (caught.value.status, caught.value.code) == (400, "EntityTooLarge")


async def test_an_answer_that_is_not_json_is_unexpected() -> None:
    server = FakeServer()
    server.refuse[PRESIGN] = httpx.Response(200, text="hello")
    async with api(server) as client:
        with pytest.raises(UploadError, match="not JSON") as caught:
            await client.upload(ROOM, NOTE, "audio/webm")
    assert caught.value.code == "UNEXPECTED"
