"""A thumbnail job that hangs is killed at IEUM_MEDIA_TIMEOUT and the video is still sent,
without a poster, against a real server on SQLite and PostgreSQL. The upload's own deadline
is the default one: the check, the killed job and the send take seconds on a loaded machine,
and a deadline of a few seconds (the cleanup tests' own) could pass before the send."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import media
from tests.support.uploads import send, uploaded

Couple = dict[str, str]

HANGING_FFMPEG = Path(__file__).parents[1] / "support" / "bin" / "hanging-ffmpeg"

pytestmark = pytest.mark.server_env({"IEUM_FFMPEG": str(HANGING_FFMPEG), "IEUM_MEDIA_TIMEOUT": "2"})


async def test_a_hanging_thumbnail_job_is_killed_and_the_video_still_sent(
    http: httpx.AsyncClient, couple: Couple, tmp_path: Path
) -> None:
    clip = media.video(tmp_path / "clip.webm", seconds=2.0, fmt="webm")
    done = await uploaded(http, couple, clip, "video/webm")
    assert done["thumbnailUrl"] is None  # the job was killed: no poster
    assert abs(done["durationMs"] - 2000) < 150  # ffprobe's check itself went fine
    sent = await send(http, couple, {"type": "VIDEO", "mediaUrl": done["mediaUrl"]})
    assert sent.status_code == 201, sent.text
    message: dict[str, Any] = sent.json()
    assert (message["thumbnailUrl"], message["durationMs"]) == (None, done["durationMs"])
