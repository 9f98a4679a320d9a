"""Media on the demo page (/demo) in a real browser: headless Chromium driven by playwright-core
(node/demo_media.mjs), both members of a couple. A sends a photo, a voice note recorded from
Chromium's fake microphone, a video and a document; B's page shows each as the server stored
it (the photo's thumbnail linking the image, the note's duration, the video's poster, the
document's name and size as a download) and plays the voice note. Uploads the server refuses
(too large, not what they claim, over the couple's bytes of the day) fail with a line saying
why. Screenshots in ``artifacts/demo_media/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e._demo_browser import WEB_MODULES, Couple, node_ready, run_couple_script
from tests.support import media
from tests.support.server import ServerProcess

RUN_TIMEOUT = 120.0
VOICE_MS = 2500  # how long A records
VIDEO_SECONDS = 2
AUDIO_LIMIT = 256 * 1024  # the module's limit for audio uploads: a voice note fits
DAILY_BYTES = 4 * 1024 * 1024  # the couple's bytes of the day: everything sent here fits
DOCUMENT = "여행 일정표.txt"
DOCUMENT_TEXT = "1일차: 서울 → 부산\n2일차: 해운대\n".encode()

pytestmark = [
    pytest.mark.backends("sqlite"),
    pytest.mark.server_env(
        {
            "IEUM_DEMO_ASSETS": str(WEB_MODULES),
            "IEUM_UPLOAD_MAX_BYTES": f"audio={AUDIO_LIMIT}",
            "IEUM_UPLOAD_DAILY_BYTES": str(DAILY_BYTES),
        }
    ),
]


def _files(folder: Path) -> dict[str, str]:
    paths = {
        "image": folder / "sunset.jpg",
        "video": folder / "clip.webm",
        "document": folder / DOCUMENT,
        "tooLarge": folder / "long.mp3",
        "overQuota": folder / "notes.txt",
    }
    # A photo bigger than its thumbnail (at most 320 px), and a video with a sound.
    media.jpeg(paths["image"], (640, 480), gps=False, orientation=None)
    media.video(paths["video"], VIDEO_SECONDS, "webm")
    paths["document"].write_bytes(DOCUMENT_TEXT)
    # An MP3 by its head, over the audio limit: refused when it asks for a ticket.
    paths["tooLarge"].write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(AUDIO_LIMIT))
    # A document within its kind's limit, over what is left of the couple's day.
    paths["overQuota"].write_bytes(b"ieum chat\n" * (DAILY_BYTES // 10 + 1))
    return {name: str(path) for name, path in paths.items()}


def _duration(ms: int) -> str:
    """m:ss in whole seconds, as the players count them."""
    seconds = max(1, ms // 1000)
    return f"{seconds // 60}:{seconds % 60:02d}"


def _history(server: ServerProcess, couple: Couple) -> list[dict[str, Any]]:
    res = httpx.get(
        f"{server.http_url}/chat/rooms/{couple['couple']}/messages",
        params={"order": "asc", "limit": 100},
        headers={"Authorization": f"Bearer {couple['tb']}"},
        timeout=10,
    )
    assert res.status_code == 200, res.text
    messages: list[dict[str, Any]] = res.json()["messages"]
    return messages


@pytest.mark.external
def test_media_messages_on_the_demo_page(
    server: ServerProcess, couple: Couple, tmp_path: Path
) -> None:
    node_ready()
    files = _files(tmp_path)
    result, shots = run_couple_script(
        "demo_media.mjs", server, couple, timeout=RUN_TIMEOUT, voiceMs=VOICE_MS, **files
    )
    print(f"\ndemo page, media: screenshots in {shots}")

    stored = {m["type"]: m for m in _history(server, couple)}
    assert sorted(stored) == ["AUDIO", "FILE", "IMAGE", "VIDEO"]
    image, voice, video, document = (stored[t] for t in ("IMAGE", "AUDIO", "VIDEO", "FILE"))
    uploads = f"{server.http_url}/uploads/{couple['couple']}/"
    assert all(m["mediaUrl"].startswith(uploads) for m in stored.values())
    assert image["thumbnailUrl"]
    assert video["thumbnailUrl"]
    # The page measured the recording and said so; the server's measure agrees with it.
    assert abs(voice["durationMs"] - VOICE_MS) <= 1000
    assert abs(video["durationMs"] - VIDEO_SECONDS * 1000) <= 200
    assert (document["fileName"], document["size"]) == (DOCUMENT, len(DOCUMENT_TEXT))

    assert result["recordShown"] is True
    assert "audio/*" in result["accept"]
    assert ".hwp" in result["accept"]
    shown = {m["type"]: m for m in result["b"]["media"]}
    assert sorted(shown) == ["AUDIO", "FILE", "IMAGE", "VIDEO"]
    assert all(m["state"] == "sent" and not m["mine"] for m in shown.values())
    # The photo: its thumbnail, linking the image itself (in a new tab).
    assert shown["IMAGE"]["image"]["src"] == image["thumbnailUrl"]
    assert 0 < shown["IMAGE"]["image"]["width"] <= 320
    assert shown["IMAGE"]["link"] == {"href": image["mediaUrl"], "target": "_blank"}
    # The voice note: a player, its duration, and it played on B's page.
    assert shown["AUDIO"]["audio"] == {"src": voice["mediaUrl"], "controls": True}
    assert shown["AUDIO"]["duration"] == _duration(voice["durationMs"])
    assert result["playError"] is None
    assert result["played"]["ended"] or result["played"]["time"] > 0
    # The video loads nothing until played; its thumbnail is the poster.
    assert shown["VIDEO"]["video"] == {
        "src": video["mediaUrl"],
        "poster": video["thumbnailUrl"],
        "preload": "none",
        "controls": True,
    }
    assert shown["VIDEO"]["duration"] == _duration(video["durationMs"])
    # The document: a chip with its name and size that downloads it.
    assert shown["FILE"]["file"] == {
        "href": document["mediaUrl"],
        "download": DOCUMENT,
        "name": DOCUMENT,
        "size": f"{len(DOCUMENT_TEXT)} B",
    }

    # A's refused uploads: failed, with a retry and a line saying why; none reached B.
    refused = [m for m in result["a"]["media"] if m["uploadError"]]
    assert [(m["uploadError"], m["state"], m["retry"]) for m in refused] == [
        ("PAYLOAD_TOO_LARGE", "failed", True),
        ("UNSUPPORTED_MEDIA_TYPE", "failed", True),
        ("QUOTA_EXCEEDED", "failed", True),
    ]
    assert all(m["seq"] is None and m["errorLine"] for m in refused)
    assert "파일이 너무 커요" in refused[0]["errorLine"]  # A's page is in Korean
    assert not result["b"]["problems"]
    # The browser logs each refused request; nothing else went wrong on A's page.
    assert all("Failed to load resource" in p for p in result["a"]["problems"]), result["a"]
