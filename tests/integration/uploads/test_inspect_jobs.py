"""The child jobs' limits: a job past its deadline is killed with everything it started (the
inspection goes on without a thumbnail, or refuses the upload when it was the check), so is
one whose inspection is cancelled; memory and output are bounded; jobs wait for a free slot.

Stand-ins for ffmpeg and ffprobe (shell scripts in the test's folder) hang, flood, crash or
keep a log; they leave their pid behind so the test can see them gone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ieum_chat.uploads.inspect import Inspector, MediaLimits, MediaRejected
from tests.integration.uploads.conftest import (
    files_in,
    hanging_program,
    live_processes,
    stand_in,
)
from tests.support import media

# Far above what a job takes here (a fraction of a second), far below the ten minutes a
# hanging stand-in sleeps: reaching it means the job was not killed.
_BOUND = 60


def _gone(pid_file: Path) -> bool:
    pid = int(pid_file.read_text())
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # killed, waiting for init to reap it


async def test_a_hanging_thumbnail_is_killed_and_the_video_accepted(
    tools: tuple[str, str], tmp_path: Path, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = media.video(tmp_path / "clip.mp4", 2.0)
    ffmpeg = hanging_program(tmp_path, "ffmpeg")
    inspector = Inspector(MediaLimits(timeout=5, ffmpeg=str(ffmpeg), ffprobe=tools[1]))

    async with asyncio.timeout(_BOUND):
        result = await inspector.inspect(source, "video/mp4", workdir)

    assert result.thumbnail is None
    assert (result.width, result.height) == (320, 240)
    assert 1900 <= (result.duration_ms or 0) <= 2100
    assert _gone(tmp_path / "ffmpeg.pid")
    assert "no thumbnail" in caplog.text
    assert "took longer than 5 s" in caplog.text


async def test_a_hanging_check_refuses_the_upload(
    tools: tuple[str, str], tmp_path: Path, workdir: Path
) -> None:
    source = media.audio(tmp_path / "voice.ogg", 1.0, "ogg")
    ffprobe = hanging_program(tmp_path, "ffprobe")
    inspector = Inspector(MediaLimits(timeout=2, ffprobe=str(ffprobe)))

    async with asyncio.timeout(_BOUND):
        with pytest.raises(MediaRejected) as refused:
            await inspector.inspect(source, "audio/ogg", workdir)

    assert refused.value.detail == "the audio check took longer than 2 s"
    assert _gone(tmp_path / "ffprobe.pid")


async def test_a_cancelled_inspection_kills_its_job(
    tools: tuple[str, str], tmp_path: Path, workdir: Path
) -> None:
    source = media.audio(tmp_path / "voice.ogg", 1.0, "ogg")
    ffprobe = hanging_program(tmp_path, "ffprobe")
    inspector = Inspector(MediaLimits(timeout=600, ffprobe=str(ffprobe)))
    task = asyncio.create_task(inspector.inspect(source, "audio/ogg", workdir))

    async with asyncio.timeout(_BOUND):
        while not (tmp_path / "ffprobe.pid").exists():  # noqa: ASYNC110 - a file ffprobe writes
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert _gone(tmp_path / "ffprobe.pid")
    assert live_processes(str(source)) == []


async def test_a_check_past_the_memory_limit_refuses_the_upload(
    tools: tuple[str, str], tmp_path: Path, workdir: Path
) -> None:
    # 64 megapixels: under the pixel limit, 256 MB once decoded
    source = media.bomb_png(tmp_path / "huge.png", (8000, 8000), rgb=True)
    inspector = Inspector(MediaLimits(memory_bytes=160 * 2**20))

    with pytest.raises(MediaRejected) as refused:
        await inspector.inspect(source, "image/png", workdir)

    assert refused.value.detail == "the image check ran out of memory (limit 160 MiB)"
    assert files_in(workdir) == []


async def test_a_crashing_ffprobe_refuses_the_upload(
    tools: tuple[str, str], tmp_path: Path, workdir: Path
) -> None:
    source = media.audio(tmp_path / "voice.ogg", 1.0, "ogg")
    ffprobe = stand_in(tmp_path, "ffprobe", "kill -SEGV $$\n")
    inspector = Inspector(MediaLimits(ffprobe=str(ffprobe)))

    with pytest.raises(MediaRejected) as refused:
        await inspector.inspect(source, "audio/ogg", workdir)

    assert (
        refused.value.detail == "the file is not a valid audio/ogg: ffprobe was killed by SIGSEGV"
    )


async def test_a_flood_of_output_is_cut_off(
    tools: tuple[str, str], tmp_path: Path, workdir: Path
) -> None:
    source = media.audio(tmp_path / "voice.ogg", 1.0, "ogg")
    ffprobe = stand_in(
        tmp_path, "ffprobe", "echo $$ > " + str(tmp_path / "ffprobe.pid") + "\nexec yes\n"
    )
    inspector = Inspector(MediaLimits(ffprobe=str(ffprobe)))

    with pytest.raises(MediaRejected) as refused:
        await inspector.inspect(source, "audio/ogg", workdir)

    assert refused.value.detail == "the file describes too many streams or tags"
    assert _gone(tmp_path / "ffprobe.pid")


async def test_jobs_wait_for_a_free_slot(
    tools: tuple[str, str], tmp_path: Path, workdir: Path
) -> None:
    log = tmp_path / "jobs.log"
    ffprobe = stand_in(
        tmp_path, "ffprobe", f'echo start >> "{log}"\nsleep 0.2\necho end >> "{log}"\nexit 1\n'
    )
    inspector = Inspector(MediaLimits(concurrency=1, ffprobe=str(ffprobe)))
    sources = [media.audio(tmp_path / f"v{i}.ogg", 1.0, "ogg") for i in range(3)]

    outcomes = await asyncio.gather(
        *(inspector.inspect(s, "audio/ogg", workdir) for s in sources), return_exceptions=True
    )

    assert all(isinstance(o, MediaRejected) for o in outcomes)
    assert log.read_text().split() == ["start", "end"] * 3
