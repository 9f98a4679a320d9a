"""The child process of a media job, driven directly: the limits it sets reach the programs
it starts, a file past its size limit ends it, and whatever ends it, the parent says why."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ieum_chat.uploads._jobs import JobFailed, child_env, run_job
from tests.integration.uploads.conftest import stand_in
from tests.support import media

_MIB = 2**20


def _request(**fields: Any) -> dict[str, Any]:
    limits = {"memory_bytes": 512 * _MIB, "cpu_seconds": 30, "file_bytes": 64 * _MIB}
    return {"what": "test job", **fields, "limits": {**limits, **fields.pop("limits", {})}}


async def test_ffprobe_inherits_the_limits(tools: tuple[str, str], tmp_path: Path) -> None:
    report = tmp_path / "limits"
    ffprobe = stand_in(
        tmp_path, "ffprobe", f'(ulimit -v; ulimit -t; ulimit -f; ulimit -c) > "{report}"\n'
    )
    source = media.audio(tmp_path / "voice.ogg", 1.0, "ogg")
    request = _request(
        job="av-check",
        source=str(source),
        content_type="audio/ogg",
        kind="AUDIO",
        ffprobe=str(ffprobe),
        limits={"memory_bytes": 300 * _MIB, "cpu_seconds": 25, "file_bytes": 40 * _MIB},
    )

    answer = await run_job(request, seconds=30, cwd=tmp_path)

    assert answer["ok"] is False
    # KiB of address space, seconds of CPU, 512-byte blocks of file size, core blocks (dash)
    assert report.read_text().split() == [str(300 * 1024), "25", str(40 * _MIB // 512), "0"]


async def test_a_file_past_the_size_limit_ends_the_job(tmp_path: Path) -> None:
    source = media.jpeg(tmp_path / "photo.jpg", (1200, 900))
    request = _request(
        job="image-check",
        source=str(source),
        content_type="image/jpeg",
        out=str(tmp_path / "photo.clean.jpg"),
        max_pixels=89_478_485,
        limits={"file_bytes": 4096},
    )

    with pytest.raises(JobFailed) as failed:
        await run_job(request, seconds=30, cwd=tmp_path)

    assert failed.value.reason == "wrote a file larger than its limit"


async def test_a_failing_child_is_reported_with_what_it_said(tmp_path: Path) -> None:
    with pytest.raises(JobFailed) as failed:
        await run_job(_request(job="no-such-job"), seconds=30, cwd=tmp_path)

    assert failed.value.reason == "failed (exit status 1)"
    assert "unknown job 'no-such-job'" in failed.value.stderr


def test_the_child_gets_no_secret_of_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IEUM_JWT_SECRET", "do-not-leak")

    env = child_env()

    assert set(env) == {"PATH", "PYTHONPATH", "MALLOC_ARENA_MAX"}
    assert "do-not-leak" not in "".join(env.values())
    assert os.path.isdir(os.path.join(env["PYTHONPATH"].split(os.pathsep)[0], "ieum_chat"))
