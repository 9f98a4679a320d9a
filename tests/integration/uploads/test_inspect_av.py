"""Audio and video through the inspector: every accepted container read with its duration
(also when its header has none, as MediaRecorder writes WebM) and its size as displayed;
video thumbnails; and each mismatch refused with a reason."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from ieum_chat.media_types import Kind
from ieum_chat.uploads.inspect import (
    Inspection,
    Inspector,
    MediaLimits,
    MediaRejected,
    MediaToolError,
)
from tests.integration.uploads.conftest import files_in
from tests.support import media

AUDIO_TYPES = {
    "m4a": "audio/mp4",
    "ogg": "audio/ogg",
    "webm": "audio/webm",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "aac": "audio/aac",
}
VIDEO_TYPES = {
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "3gp": "video/3gpp",
    "webm": "video/webm",
}
# Encoders pad (MP3's frames) and ADTS has no index (its duration is estimated).
_SLACK_MS = 100


def _about(duration_ms: int | None, seconds: float) -> bool:
    return duration_ms is not None and abs(duration_ms - seconds * 1000) <= _SLACK_MS


def _thumbnail_size(result: Inspection) -> tuple[int, int]:
    assert result.thumbnail is not None
    with Image.open(result.thumbnail) as thumb:
        assert thumb.format == "WEBP"
        assert max(thumb.size) <= 320
        return thumb.size


def _has_header_duration(ffprobe: str, path: Path) -> bool:
    cmd = [ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)]
    probe = json.loads(subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout)
    return "duration" in probe["format"]


@pytest.mark.parametrize(("fmt", "content_type"), sorted(AUDIO_TYPES.items()))
async def test_audio_of_every_type_is_accepted(
    inspector: Inspector, tmp_path: Path, workdir: Path, fmt: str, content_type: str
) -> None:
    source = media.audio(tmp_path / f"voice.{fmt}", 2.0, fmt)

    result = await inspector.inspect(source, content_type, workdir)

    assert (result.kind, result.content_type, result.file) == (Kind.AUDIO, content_type, source)
    assert result.size == source.stat().st_size
    assert _about(result.duration_ms, 2.0), result.duration_ms
    assert (result.width, result.height, result.thumbnail) == (None, None, None)


async def test_audio_with_cover_art_is_still_audio(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = media.audio(tmp_path / "song.m4a", 3.0, "m4a", cover=True)

    result = await inspector.inspect(source, "audio/mp4", workdir)

    assert result.kind is Kind.AUDIO
    assert _about(result.duration_ms, 3.0)


@pytest.mark.parametrize(("fmt", "content_type"), sorted(VIDEO_TYPES.items()))
async def test_video_of_every_type_is_accepted(
    inspector: Inspector, tmp_path: Path, workdir: Path, fmt: str, content_type: str
) -> None:
    source = media.video(tmp_path / f"clip.{fmt}", 2.0, fmt, size=(640, 360))

    result = await inspector.inspect(source, content_type, workdir)

    assert (result.kind, result.content_type, result.file) == (Kind.VIDEO, content_type, source)
    assert result.size == source.stat().st_size
    assert _about(result.duration_ms, 2.0), result.duration_ms
    assert (result.width, result.height) == (640, 360)
    assert result.thumbnail == workdir / "clip.thumb.webp"
    assert _thumbnail_size(result) == (320, 180)


async def test_a_small_video_gets_a_thumbnail_of_its_own_size(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = media.video(tmp_path / "tiny.mp4", 1.0, size=(160, 120), sound=False)

    result = await inspector.inspect(source, "video/mp4", workdir)

    assert (result.width, result.height) == (160, 120)
    assert _thumbnail_size(result) == (160, 120)


@pytest.mark.parametrize("rotate", [90, 270])
async def test_a_video_shot_upright_is_measured_upright(
    inspector: Inspector, tmp_path: Path, workdir: Path, rotate: int
) -> None:
    source = media.video(tmp_path / "phone.mp4", 2.0, size=(640, 360), rotate=rotate)

    result = await inspector.inspect(source, "video/mp4", workdir)

    assert (result.width, result.height) == (360, 640)
    assert _thumbnail_size(result) == (180, 320)


@pytest.mark.parametrize(("with_video", "kind"), [(True, Kind.VIDEO), (False, Kind.AUDIO)])
async def test_a_recorder_webm_gets_its_duration_from_its_packets(
    tools: tuple[str, str], inspector: Inspector, tmp_path: Path, with_video: bool, kind: Kind
) -> None:
    source = media.recorder_webm(tmp_path / "rec.webm", 3.0, with_video=with_video)
    assert not _has_header_duration(tools[1], source)

    content_type = f"{kind.value.lower()}/webm"

    result = await inspector.inspect(source, content_type, tmp_path / "work")

    assert result.kind is kind
    assert _about(result.duration_ms, 3.0), result.duration_ms
    if with_video:
        assert (result.width, result.height) == (320, 240)
        assert _thumbnail_size(result) == (320, 240)


async def test_audio_declared_as_video_is_refused(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = media.audio(tmp_path / "voice.m4a", 1.0, "m4a")

    with pytest.raises(MediaRejected) as refused:
        await inspector.inspect(source, "video/mp4", workdir)

    assert refused.value.detail == "the file has no video stream: it is not video/mp4"


async def test_video_declared_as_audio_is_refused(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = media.video(tmp_path / "clip.webm", 1.0, "webm")

    with pytest.raises(MediaRejected) as refused:
        await inspector.inspect(source, "audio/webm", workdir)

    assert refused.value.detail == "the file has a video stream: it is a video, not audio/webm"


async def test_a_zip_declared_as_video_is_refused(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = media.zip_archive(tmp_path / "clip.mp4")

    with pytest.raises(MediaRejected) as refused:
        await inspector.inspect(source, "video/mp4", workdir)

    assert refused.value.detail == (
        "the file is not video/mp4: its first bytes are those of application/zip"
    )


async def test_another_container_that_passes_the_first_bytes_is_refused(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    # ADTS's sync bits pass for MPEG audio; ffprobe finds the AAC demuxer, not the MP3 one
    source = media.audio(tmp_path / "voice.mp3", 1.0, "aac")

    with pytest.raises(MediaRejected) as refused:
        await inspector.inspect(source, "audio/mpeg", workdir)

    assert refused.value.detail == "the file is aac, not audio/mpeg"


async def test_a_video_cut_short_is_refused(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    whole = media.video(tmp_path / "whole.mp4", 2.0)  # its index (moov) comes last
    source = tmp_path / "cut.mp4"
    source.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])

    with pytest.raises(MediaRejected, match=r"^the file is not a valid video/mp4: .*moov"):
        await inspector.inspect(source, "video/mp4", workdir)


async def test_without_ffprobe_the_server_is_at_fault(
    tools: tuple[str, str], tmp_path: Path, workdir: Path
) -> None:
    inspector = Inspector(MediaLimits(ffprobe=str(tmp_path / "no-ffprobe")))
    source = media.audio(tmp_path / "voice.ogg", 1.0, "ogg")

    with pytest.raises(MediaToolError, match="no-ffprobe could not be started"):
        await inspector.inspect(source, "audio/ogg", workdir)


async def test_without_ffmpeg_a_video_has_no_thumbnail(
    tools: tuple[str, str], tmp_path: Path, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inspector = Inspector(MediaLimits(ffprobe=tools[1], ffmpeg=str(tmp_path / "no-ffmpeg")))
    source = media.video(tmp_path / "clip.mp4", 1.0)

    result = await inspector.inspect(source, "video/mp4", workdir)

    assert (result.thumbnail, result.width) == (None, 320)
    assert files_in(workdir) == []
    assert "no-ffmpeg could not be started" in caplog.text
