"""The client SDK's media against a real server: ChatApi.upload (ticket, PUT, completion) of a
photo, a voice note, a video and a document; the messages that carry them, as the partner
receives them; and what the server refuses, as the SDK's exceptions."""

from __future__ import annotations

import io
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from ieum_chat.client import (
    ChatApi,
    ChatMessage,
    QuotaExceeded,
    SendError,
    UnsupportedMedia,
    UploadError,
    UploadTooLarge,
)
from tests.e2e._demo_browser import require
from tests.integration.test_client import Couple, member, next_of, running
from tests.support.server import ServerProcess

FILE_LIMIT = 64 * 1024  # this module's limit for documents
DAILY_BYTES = 2 * 1024 * 1024  # the couple's bytes of the day
SECONDS = 2

pytestmark = pytest.mark.server_env(
    {"IEUM_UPLOAD_MAX_BYTES": f"file={FILE_LIMIT}", "IEUM_UPLOAD_DAILY_BYTES": str(DAILY_BYTES)}
)


def _jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (250, 120, 80)).save(out, "JPEG", quality=80)
    return out.getvalue()


def _ffmpeg(tmp_path: Path, name: str, *args: str) -> bytes:
    """A file ffmpeg makes from its test sources (two seconds)."""
    ffmpeg = shutil.which("ffmpeg")
    require(ffmpeg is not None, "ffmpeg is needed to make the test's media: apt-get install ffmpeg")
    assert ffmpeg is not None
    out = tmp_path / name
    subprocess.run([ffmpeg, "-v", "error", "-y", *args, str(out)], check=True, timeout=60)
    return out.read_bytes()


def _voice_note(tmp_path: Path) -> bytes:
    sine = f"sine=frequency=330:duration={SECONDS}"
    return _ffmpeg(tmp_path, "note.m4a", "-f", "lavfi", "-i", sine, "-c:a", "aac", "-b:a", "64k")


def _video(tmp_path: Path) -> bytes:
    card = f"testsrc=duration={SECONDS}:size=320x240:rate=15"
    return _ffmpeg(
        tmp_path, "clip.webm", "-f", "lavfi", "-i", card, "-c:v", "libvpx", "-b:v", "200k"
    )


@pytest.fixture
async def api(server: ServerProcess, couple: Couple) -> AsyncIterator[ChatApi]:
    async with ChatApi(server.http_url, lambda: couple["ta"]) as client:
        yield client


async def test_a_photo_voice_note_video_and_document_reach_the_partner(
    server: ServerProcess, couple: Couple, api: ChatApi, tmp_path: Path
) -> None:
    room = uuid.UUID(couple["couple"])
    photo = await api.upload(room, _jpeg(1280, 960), "image/jpeg")
    note = await api.upload(room, _voice_note(tmp_path), "audio/mp4")
    clip = await api.upload(room, _video(tmp_path), "video/webm")
    document = tmp_path / "여행 일정표.pdf"
    document.write_bytes(b"%PDF-1.4\n% ieum\n" + b"0" * 2000 + b"\n%%EOF\n")
    doc = await api.upload(room, document, "application/pdf")

    uploads = f"{server.http_url}/uploads/{room}/"
    assert all(u.media_url.startswith(uploads) for u in (photo, note, clip, doc))
    assert (photo.kind, photo.width, photo.height, photo.image_url) == (
        "IMAGE",
        1280,
        960,
        photo.media_url,
    )
    assert photo.thumbnail_url is not None
    assert (note.kind, note.content_type, note.image_url) == ("AUDIO", "audio/mp4", None)
    assert note.duration_ms is not None
    assert abs(note.duration_ms - SECONDS * 1000) <= 200
    assert (clip.kind, clip.width, clip.height) == ("VIDEO", 320, 240)
    assert clip.thumbnail_url is not None
    assert clip.duration_ms is not None
    assert (doc.kind, doc.file_name, doc.size) == (
        "FILE",
        "여행 일정표.pdf",
        document.stat().st_size,
    )

    a, b = member(server, couple, "a"), member(server, couple, "b")
    async with running(a, b):
        await a.send_upload(photo, "노을 보세요")
        await a.send_audio(note.media_url)  # the server knows its duration
        await a.send_video(
            clip.media_url, duration_ms=clip.duration_ms, thumbnail_url=clip.thumbnail_url
        )
        await a.send_file(doc.media_url, file_name=doc.file_name, size=doc.size)
        got = [await next_of(b, ChatMessage) for _ in range(4)]

    assert [m.type for m in got] == ["IMAGE", "AUDIO", "VIDEO", "FILE"]
    image, voice, video, file = got
    assert (image.content, image.image_url, image.media_url) == (
        "노을 보세요",
        photo.media_url,
        photo.media_url,
    )
    assert (image.thumbnail_url, image.width, image.height) == (photo.thumbnail_url, 1280, 960)
    assert (voice.media_url, voice.duration_ms, voice.image_url) == (
        note.media_url,
        note.duration_ms,
        None,
    )
    assert (video.media_url, video.thumbnail_url, video.duration_ms) == (
        clip.media_url,
        clip.thumbnail_url,
        clip.duration_ms,
    )
    assert (video.width, video.height) == (320, 240)
    assert (file.media_url, file.file_name, file.size) == (doc.media_url, doc.file_name, doc.size)


async def test_a_detail_that_disagrees_with_the_upload_is_refused(
    server: ServerProcess, couple: Couple, api: ChatApi, tmp_path: Path
) -> None:
    note = await api.upload(couple["couple"], _voice_note(tmp_path), "audio/mp4")
    assert note.duration_ms is not None
    a = member(server, couple, "a")
    async with running(a):
        with pytest.raises(SendError) as caught:
            await a.send_audio(note.media_url, duration_ms=note.duration_ms + 60_000)
        assert caught.value.code == "SEND_FAILED"
        assert "duration" in (caught.value.detail or "").lower()
        with pytest.raises(SendError) as caught:
            await a.send_file(note.media_url, size=1)  # not a document's upload either
        assert caught.value.code == "SEND_FAILED"


async def test_refusals_are_the_sdks_exceptions_with_the_servers_codes(
    couple: Couple, api: ChatApi
) -> None:
    room = couple["couple"]
    with pytest.raises(UnsupportedMedia) as refused:
        await api.upload(room, b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml")
    assert (refused.value.status, refused.value.code) == (415, "UNSUPPORTED_MEDIA_TYPE")
    with pytest.raises(UnsupportedMedia) as refused:
        await api.upload(room, b"not a picture at all", "image/png")  # checked on arrival
    assert (refused.value.status, refused.value.code) == (415, "UNSUPPORTED_MEDIA_TYPE")
    with pytest.raises(UploadTooLarge) as too_large:
        await api.upload(room, b"%PDF-1.4\n" + bytes(FILE_LIMIT), "application/pdf", "big.pdf")
    assert (too_large.value.status, too_large.value.code) == (413, "PAYLOAD_TOO_LARGE")
    # Within the limit of its kind, over what is left of the couple's day.
    with pytest.raises(QuotaExceeded) as quota:
        await api.upload(room, _jpeg(8, 8) + bytes(DAILY_BYTES), "image/jpeg")
    assert (quota.value.status, quota.value.code) == (429, "QUOTA_EXCEEDED")
    assert quota.value.retry_after is not None
    assert quota.value.retry_after > 0


async def test_the_three_steps_alone_and_a_completion_twice(couple: Couple, api: ChatApi) -> None:
    photo = _jpeg(64, 48)
    ticket = await api.presign(couple["couple"], "image/jpeg", len(photo))
    assert (ticket.kind, ticket.method, ticket.image_url) == ("IMAGE", "PUT", ticket.media_url)
    with pytest.raises(UploadError) as early:
        await api.complete(ticket)  # nothing uploaded yet
    assert (early.value.status, early.value.code) == (409, "CONFLICT")
    await api.transfer(ticket, photo)
    first = await api.complete(ticket)
    assert first == await api.complete(ticket)
    assert (first.upload_id, first.media_url, first.size) == (
        ticket.upload_id,
        ticket.media_url,
        len(photo),
    )
