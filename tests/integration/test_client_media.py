"""The client SDK's media against a real server: ChatApi.upload (ticket, PUT, completion) of a
photo, a voice note, a video and a document; the messages that carry them, as the partner
receives them; what the server refuses, as the SDK's exceptions; and an upload through
object storage (moto's S3 server: the form POST, then the completion)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ieum_chat.client import (
    ChatApi,
    ChatMessage,
    QuotaExceeded,
    SendError,
    UnsupportedMedia,
    UploadError,
    UploadTooLarge,
)
from tests.integration.test_client import Couple, member, next_of, running
from tests.support import media
from tests.support.fixtures import FAKE_KEY_ID, FAKE_SECRET, SERVER_ENV
from tests.support.server import Cli, ServerProcess

FILE_LIMIT = 64 * 1024  # this module's limit for documents
DAILY_BYTES = 2 * 1024 * 1024  # the couple's bytes of the day
SECONDS = 2

pytestmark = pytest.mark.server_env(
    {"IEUM_UPLOAD_MAX_BYTES": f"file={FILE_LIMIT}", "IEUM_UPLOAD_DAILY_BYTES": str(DAILY_BYTES)}
)


def _jpeg(tmp_path: Path, width: int, height: int) -> bytes:
    return media.jpeg(
        tmp_path / "photo.jpg", (width, height), gps=False, orientation=None
    ).read_bytes()


def _voice_note(tmp_path: Path) -> bytes:
    """Two seconds as a browser records them: WebM without a duration in its header."""
    return media.recorder_webm(tmp_path / "note.weba", SECONDS, with_video=False).read_bytes()


def _song(tmp_path: Path) -> bytes:
    return media.audio(tmp_path / "song.m4a", SECONDS).read_bytes()


def _video(tmp_path: Path) -> bytes:
    return media.video(tmp_path / "clip.webm", SECONDS, "webm").read_bytes()


@pytest.fixture
async def api(server: ServerProcess, couple: Couple) -> AsyncIterator[ChatApi]:
    async with ChatApi(server.http_url, lambda: couple["ta"]) as client:
        yield client


async def test_a_photo_voice_note_video_and_document_reach_the_partner(
    server: ServerProcess, couple: Couple, api: ChatApi, tmp_path: Path
) -> None:
    room = uuid.UUID(couple["couple"])
    photo = await api.upload(room, _jpeg(tmp_path, 1280, 960), "image/jpeg")
    note = await api.upload(room, _voice_note(tmp_path), "audio/webm")
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
    assert (note.kind, note.content_type, note.image_url) == ("AUDIO", "audio/webm", None)
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
    note = await api.upload(couple["couple"], _song(tmp_path), "audio/mp4")
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
        await api.upload(room, b"\xff\xd8\xff" + bytes(DAILY_BYTES), "image/jpeg")
    assert (quota.value.status, quota.value.code) == (429, "QUOTA_EXCEEDED")
    assert quota.value.retry_after is not None
    assert quota.value.retry_after > 0


async def test_the_three_steps_alone_and_a_completion_twice(
    couple: Couple, api: ChatApi, tmp_path: Path
) -> None:
    photo = _jpeg(tmp_path, 64, 48)
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


async def test_an_upload_through_object_storage(
    cli: Cli, couple: Couple, s3_server: str, fake_aws: None, tmp_path: Path
) -> None:
    import boto3

    bucket = f"ieum-client-{uuid.uuid4().hex[:12]}"
    boto3.session.Session().client(
        "s3", region_name="us-east-1", endpoint_url=s3_server
    ).create_bucket(Bucket=bucket)
    env = {
        **SERVER_ENV,
        "IEUM_S3_BUCKET": bucket,
        "IEUM_S3_ENDPOINT_URL": s3_server,
        "IEUM_S3_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": FAKE_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    server = ServerProcess(cli, tmp_path / "server.log", extra_env=env).start()
    try:
        async with ChatApi(server.http_url, lambda: couple["ta"]) as api:
            ticket = await api.presign(couple["couple"], "audio/mp4", 10)
            assert (ticket.method, ticket.headers) == ("POST", {})
            assert ticket.upload_url.startswith(s3_server)
            note = await api.upload(couple["couple"], _song(tmp_path), "audio/mp4")
            document = await api.upload(
                couple["couple"], b"%PDF-1.4\n%%EOF\n", "application/pdf", "계약서.pdf"
            )
            with pytest.raises(UnsupportedMedia) as refused:  # checked on completion
                await api.upload(couple["couple"], b"ID3 but no sound", "audio/mpeg")
        assert refused.value.code == "UNSUPPORTED_MEDIA_TYPE"
        assert (note.kind, note.content_type) == ("AUDIO", "audio/mp4")
        assert note.duration_ms is not None
        assert abs(note.duration_ms - SECONDS * 1000) <= 200
        assert (document.kind, document.file_name) == ("FILE", "계약서.pdf")
        assert note.media_url.startswith(f"{s3_server}/{bucket}/{couple['couple']}/")
        a, b = member(server, couple, "a"), member(server, couple, "b")
        async with running(a, b):
            await a.send_upload(note)
            got = await next_of(b, ChatMessage)
        assert (got.type, got.media_url, got.duration_ms) == (
            "AUDIO",
            note.media_url,
            note.duration_ms,
        )
    finally:
        server.stop()
