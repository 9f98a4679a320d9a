"""Images, voice notes, videos and files end to end against a real server, on SQLite and
PostgreSQL: the ticket, the upload and its check, the message (REST and STOMP) and history,
what is served (ranges, attachments, EXIF gone, thumbnails), and each bad input refused with
a clear code and nothing stored. Files are made by the tests (Pillow, ffmpeg)."""

from __future__ import annotations

import asyncio
import io
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.support import media
from tests.support.server import ServerProcess
from tests.support.stomp_client import StompTestClient, frame_json
from tests.support.uploads import auth, send, ticket, uploaded

Couple = dict[str, str]

pytestmark = pytest.mark.server_env(
    {
        "IEUM_UPLOAD_MAX_BYTES": "image=3MiB,audio=2MiB,video=6MiB,file=1MiB",
        "IEUM_UPLOAD_DAILY_BYTES": str(40 * 1024 * 1024),
    }
)


def refused(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    detail: str = body["detail"]
    return detail


async def latest(http: httpx.AsyncClient, couple: Couple) -> dict[str, Any]:
    page = await http.get(
        f"/chat/rooms/{couple['couple']}/messages", params={"limit": 1}, headers=auth(couple["tb"])
    )
    assert page.status_code == 200, page.text
    message: dict[str, Any] = page.json()["messages"][0]
    return message


# -- each kind, end to end ----------------------------------------------------------------


async def test_a_photo_loses_its_location_and_gets_a_thumbnail(
    http: httpx.AsyncClient, couple: Couple, tmp_path: Path
) -> None:
    photo = media.jpeg(tmp_path / "photo.jpg", size=(1600, 1200), gps=True, orientation=6)
    done = await uploaded(http, couple, photo, "image/jpeg")
    assert done["kind"] == "IMAGE"
    assert done["imageUrl"] == done["mediaUrl"]
    assert (done["width"], done["height"]) == (1200, 1600)  # the orientation applied

    served = await http.get(done["mediaUrl"])
    assert served.status_code == 200
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert served.headers["content-disposition"] == "inline"
    assert len(served.content) == done["size"]
    stored = Image.open(io.BytesIO(served.content))
    assert stored.getexif() == {}  # no GPS, no camera, no orientation left to apply
    assert stored.size == (1200, 1600)

    thumb = await http.get(done["thumbnailUrl"])
    assert thumb.status_code == 200
    assert thumb.headers["content-type"] == "image/webp"
    small = Image.open(io.BytesIO(thumb.content))
    assert small.format == "WEBP"
    assert max(small.size) == 320

    sent = await send(
        http, couple, {"type": "IMAGE", "imageUrl": done["mediaUrl"], "tempId": "photo"}
    )
    assert sent.status_code == 201, sent.text
    message = await latest(http, couple)
    assert message["id"] == sent.json()["id"]
    assert message["imageUrl"] == message["mediaUrl"] == done["mediaUrl"]
    assert message["thumbnailUrl"] == done["thumbnailUrl"]
    assert (message["width"], message["height"], message["size"]) == (1200, 1600, done["size"])
    assert message["durationMs"] is None


async def test_a_voice_note_carries_its_duration(
    http: httpx.AsyncClient, couple: Couple, tmp_path: Path
) -> None:
    note = media.audio(tmp_path / "note.m4a", seconds=2.0, fmt="m4a")
    done = await uploaded(http, couple, note, "audio/x-m4a")
    assert (done["kind"], done["contentType"]) == ("AUDIO", "audio/mp4")
    assert abs(done["durationMs"] - 2000) < 150
    assert (done["imageUrl"], done["thumbnailUrl"], done["width"]) == (None, None, None)

    sent = await send(
        http,
        couple,
        {"type": "AUDIO", "mediaUrl": done["mediaUrl"], "durationMs": 2000, "tempId": "n1"},
    )
    assert sent.status_code == 201, sent.text
    message = await latest(http, couple)
    assert (message["type"], message["mediaUrl"]) == ("AUDIO", done["mediaUrl"])
    assert message["durationMs"] == done["durationMs"]  # the file's, not the claim
    assert message["imageUrl"] is None

    # ranges: a browser's <audio> seeks
    served = await http.get(done["mediaUrl"], headers={"Range": "bytes=100-199"})
    assert served.status_code == 206
    assert served.headers["content-range"] == f"bytes 100-199/{done['size']}"
    assert served.content == note.read_bytes()[100:200]
    past = await http.get(done["mediaUrl"], headers={"Range": f"bytes={done['size'] + 10}-"})
    assert past.status_code == 416


async def test_a_video_gets_a_poster_and_its_duration(
    http: httpx.AsyncClient, couple: Couple, tmp_path: Path
) -> None:
    clip = media.video(tmp_path / "clip.mp4", seconds=3.0, fmt="mp4")
    done = await uploaded(http, couple, clip, "video/mp4")
    assert done["kind"] == "VIDEO"
    assert abs(done["durationMs"] - 3000) < 150
    assert done["width"] > 0
    assert done["height"] > 0
    poster = Image.open(io.BytesIO((await http.get(done["thumbnailUrl"])).content))
    assert poster.format == "WEBP"
    assert max(poster.size) <= 320

    body = {
        "type": "VIDEO",
        "mediaUrl": done["mediaUrl"],
        "thumbnailUrl": done["thumbnailUrl"],
        "content": "우리 여행",
        "tempId": "v1",
    }
    assert (await send(http, couple, body)).status_code == 201
    message = await latest(http, couple)
    assert (message["type"], message["content"]) == ("VIDEO", "우리 여행")
    assert message["thumbnailUrl"] == done["thumbnailUrl"]
    assert message["durationMs"] == done["durationMs"]


async def test_a_file_downloads_under_its_korean_name(
    http: httpx.AsyncClient, couple: Couple, tmp_path: Path
) -> None:
    name = '여행 계획 "최종" (1).txt'
    doc = media.text(tmp_path / "plan.txt", "첫째 날: 바다\n")
    done = await uploaded(http, couple, doc, "text/plain", fileName=name)
    assert (done["kind"], done["fileName"]) == ("FILE", name)

    served = await http.get(done["mediaUrl"])
    assert served.headers["content-type"] == "text/plain; charset=utf-8"
    disposition = served.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="')
    encoded = disposition.split("filename*=UTF-8''", 1)[1]
    assert urllib.parse.unquote(encoded) == name

    sent = await send(
        http,
        couple,
        {"type": "FILE", "mediaUrl": done["mediaUrl"], "fileName": name, "size": done["size"]},
    )
    assert sent.status_code == 201, sent.text
    message = await latest(http, couple)
    assert (message["fileName"], message["size"]) == (name, done["size"])


async def test_stomp_sends_media_as_rest_does(
    server: ServerProcess, http: httpx.AsyncClient, couple: Couple, tmp_path: Path
) -> None:
    done = await uploaded(http, couple, media.audio(tmp_path / "n.ogg", 1.5, "ogg"), "audio/ogg")
    client = await StompTestClient.connected(server.ws_url, couple["ta"])
    try:
        await client.subscribe("/user/queue/errors")
        await client.subscribe(f"/topic/couple/{couple['couple']}")
        destination = f"/app/chat/{couple['couple']}"
        body = {"type": "AUDIO", "mediaUrl": done["mediaUrl"], "tempId": "st"}
        await client.send("SEND", {"destination": destination, "receipt": "r1"}, body)
        (message,) = await client.receipt("r1") or [await client.expect_message()]
        assert (message["type"], message["durationMs"]) == ("AUDIO", done["durationMs"])
        lie = {**body, "durationMs": 36_000_000, "tempId": "x"}
        await client.send("SEND", {"destination": destination}, lie)
        error = frame_json(await client.expect("MESSAGE"))
        assert (error["code"], error["tempId"]) == ("SEND_FAILED", "x")
        assert "durationMs" in error["detail"]
    finally:
        await client.close()


# -- bad input: a clear error, nothing stored ---------------------------------------------


@pytest.mark.parametrize(
    ("make", "content_type", "reason"),
    [
        (lambda d: media.html_as_png(d / "x.png"), "image/png", "not image/png"),
        (lambda d: media.zip_archive(d / "x.mp4"), "video/mp4", "not video/mp4"),
        (lambda d: media.truncated_jpeg(d / "x.jpg"), "image/jpeg", "truncated"),
        (lambda d: media.bomb_png(d / "x.png"), "image/png", "decompression bomb"),
        (lambda d: media.audio(d / "x.m4a", 1.0, "m4a"), "video/mp4", "no video stream"),
    ],
    ids=["html-as-png", "zip-as-video", "truncated-jpeg", "bomb", "audio-as-video"],
)
async def test_a_file_that_is_not_what_it_says_is_refused(
    http: httpx.AsyncClient,
    couple: Couple,
    tmp_path: Path,
    *,
    make: Any,
    content_type: str,
    reason: str,
) -> None:
    path = make(tmp_path)
    data = await asyncio.to_thread(path.read_bytes)
    asked = (await ticket(http, couple, content_type, len(data))).json()
    answer = await http.put(asked["uploadUrl"], content=data, headers=asked["headers"])
    detail = refused(answer, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert reason in detail
    assert (await http.get(asked["mediaUrl"])).status_code == 404
    # nothing published: the upload cannot be sent, and completing it says so
    sent = await send(http, couple, {"type": "IMAGE", "imageUrl": asked["mediaUrl"]})
    refused(sent, 400, "SEND_FAILED")
    again = await http.post(asked["completeUrl"], headers=auth(couple["ta"]))
    refused(again, 409, "CONFLICT")


async def test_sends_that_misname_their_file_are_refused(
    http: httpx.AsyncClient, couple: Couple, tmp_path: Path
) -> None:
    note = await uploaded(http, couple, media.audio(tmp_path / "a.m4a", 2.0, "m4a"), "audio/mp4")
    doc = await uploaded(
        http, couple, media.text(tmp_path / "t.txt"), "text/plain", fileName="a.txt"
    )
    cases = [
        ({"type": "AUDIO", "mediaUrl": note["mediaUrl"], "durationMs": 36_000_000}, "durationMs"),
        ({"type": "VIDEO", "mediaUrl": note["mediaUrl"]}, "AUDIO"),
        ({"type": "FILE", "mediaUrl": doc["mediaUrl"], "fileName": "b.txt"}, "fileName"),
        ({"type": "FILE", "mediaUrl": doc["mediaUrl"], "fileName": "../a.txt"}, "fileName"),
        ({"type": "FILE", "mediaUrl": doc["mediaUrl"], "fileName": "a\u0000.txt"}, "NUL"),
        ({"type": "FILE", "mediaUrl": doc["mediaUrl"], "size": doc["size"] + 1}, "size"),
        (
            {"type": "AUDIO", "mediaUrl": note["mediaUrl"].replace(couple["couple"], "x")},
            "mediaUrl",
        ),
        ({"type": "AUDIO"}, "mediaUrl"),
    ]
    for body, words in cases:
        answer = await send(http, couple, {**body, "tempId": "bad"})
        detail = refused(answer, 400, "SEND_FAILED")
        assert words in detail, (body, detail)
        assert answer.json()["tempId"] == "bad"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"contentType": "text/plain", "size": 10, "fileName": "../../etc/passwd"},
            400,
            "BAD_REQUEST",
        ),
        ({"contentType": "text/plain", "size": 10, "fileName": "a\u0000b"}, 400, "BAD_REQUEST"),
        ({"contentType": "text/plain", "size": 10, "fileName": ".."}, 400, "BAD_REQUEST"),
        ({"contentType": "video/mp4", "size": 6 * 1024 * 1024 + 1}, 413, "PAYLOAD_TOO_LARGE"),
        ({"contentType": "application/pdf", "size": 1024 * 1024 + 1}, 413, "PAYLOAD_TOO_LARGE"),
        ({"contentType": "image/svg+xml", "size": 10}, 415, "UNSUPPORTED_MEDIA_TYPE"),
        ({"contentType": "application/x-msdownload", "size": 10}, 415, "UNSUPPORTED_MEDIA_TYPE"),
    ],
)
async def test_tickets_the_server_cannot_honour_are_refused(
    http: httpx.AsyncClient, couple: Couple, body: dict[str, Any], status: int, code: str
) -> None:
    answer = await http.post(
        f"/chat/rooms/{couple['couple']}/uploads", json=body, headers=auth(couple["ta"])
    )
    refused(answer, status, code)


async def test_the_daily_quota_is_the_couples(
    http: httpx.AsyncClient, couple: Couple, couple_pool: Any
) -> None:
    size = 5 * 1024 * 1024
    for _ in range(8):  # 40 MiB declared: the day's bytes
        assert (await ticket(http, couple, "video/mp4", size)).status_code == 200
    over = await ticket(http, couple, "video/mp4", size)
    detail = refused(over, 429, "QUOTA_EXCEEDED")
    assert "today" in detail
    assert 0 < int(over.headers["retry-after"]) <= 86400 + 3600
    small = await ticket(http, couple, "image/png", 100)
    refused(small, 429, "QUOTA_EXCEEDED")
    other = next(couple_pool)  # another couple's day is its own
    assert (await ticket(http, other, "video/mp4", size)).status_code == 200
