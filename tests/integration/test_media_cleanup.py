"""What happens to uploads after the fact, against a real server on SQLite and PostgreSQL
(short deadlines): an upload no message names is deleted after its deadline; an unsent
message's file is deleted; a named one stays."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.support import media
from tests.support.uploads import auth, send, uploaded

Couple = dict[str, str]

pytestmark = pytest.mark.server_env({"IEUM_UPLOAD_TTL": "4", "IEUM_UNSEND_WINDOW": "60"})

# The cleanup runs every IEUM_UPLOAD_TTL seconds on some node; an upload goes once its URL
# expired (4 s) and its grace passed (4 s more). Waits are bounded by far more than that.
WAIT = 60.0


async def gone(http: httpx.AsyncClient, url: str) -> bool:
    """Whether ``url`` stops being served within :data:`WAIT` seconds."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if (await http.get(url)).status_code == 404:
            return True
        await asyncio.sleep(0.5)
    return False


async def test_an_upload_no_message_names_is_deleted_and_a_named_one_stays(
    http: httpx.AsyncClient, couple: Couple, tmp_path: Path
) -> None:
    kept = await uploaded(http, couple, media.text(tmp_path / "a.txt"), "text/plain")
    dropped = await uploaded(http, couple, media.text(tmp_path / "b.txt"), "text/plain")
    sent = await send(http, couple, {"type": "FILE", "mediaUrl": kept["mediaUrl"]})
    assert sent.status_code == 201, sent.text
    assert await gone(http, dropped["mediaUrl"])
    assert (await http.get(kept["mediaUrl"])).status_code == 200
    late = await send(http, couple, {"type": "FILE", "mediaUrl": dropped["mediaUrl"]})
    assert late.status_code == 400
    assert late.json()["code"] == "SEND_FAILED"


async def test_unsending_a_voice_note_deletes_its_file(
    http: httpx.AsyncClient, couple: Couple, tmp_path: Path
) -> None:
    note = media.audio(tmp_path / "n.m4a", seconds=1.0, fmt="m4a")
    done = await uploaded(http, couple, note, "audio/mp4")
    sent = await send(http, couple, {"type": "AUDIO", "mediaUrl": done["mediaUrl"]})
    assert sent.status_code == 201, sent.text
    message_id = sent.json()["id"]
    unsent = await http.post(
        f"/chat/rooms/{couple['couple']}/messages/{message_id}/unsend",
        headers=auth(couple["ta"]),
    )
    assert unsent.status_code == 200, unsent.text
    tombstone = unsent.json()
    assert (tombstone["unsent"], tombstone["mediaUrl"], tombstone["durationMs"]) == (
        True,
        None,
        None,
    )
    assert await gone(http, done["mediaUrl"])
