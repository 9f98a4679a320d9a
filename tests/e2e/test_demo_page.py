"""The demo page (/demo) in a real browser: headless Chromium driven by playwright-core
(node/demo_page.mjs), both members of a couple, against a real server that restarts mid-chat;
once over WebSocket and once without (SockJS xhr-streaming: A's browser has no WebSocket and its
page is told so with ``&transport=``; B's browser has one whose every connection is refused,
and its page falls back by itself).

Screenshots are kept in ``artifacts/demo_page/<mode>/`` at the repository root (git-ignored;
``IEUM_TEST_ARTIFACTS`` names another folder). With ``CI`` set a missing Chromium, Node.js or
npm install fails the test; elsewhere it is skipped.
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from ieum_chat.demo import VENDOR_FILES
from tests.e2e._demo_browser import (
    WEB_MODULES,
    Couple,
    Driver,
    artifacts,
    chromium,
    history_seqs,
    node_ready,
    require,
)
from tests.support.fixtures import SERVER_ENV
from tests.support.server import Cli, ServerProcess, free_port

HISTORY = 40  # more than one page (30): the page must scroll back by cursor
PAGE = 30  # the page's history page
RUN_TIMEOUT = 90.0

# SQLite only: what is under test is the page, not the store.
pytestmark = [
    pytest.mark.backends("sqlite"),
    pytest.mark.server_env({"IEUM_DEMO_ASSETS": str(WEB_MODULES), "IEUM_SHUTDOWN_GRACE": "2"}),
]


def _png(width: int, height: int) -> bytes:
    """A small picture (a sunset gradient with a stripe), so a screenshot shows it arrived."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            stripe = abs(y - height * 2 // 3) < 4
            r, g, b = (255, 255, 255) if stripe else (255, 90 + 120 * y // height, 60 + x // 2)
            rows += bytes((r, g, b))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows)))
        + chunk(b"IEND", b"")
    )


def _seed_history(server: ServerProcess, couple: Couple) -> None:
    """A conversation before the pages open, in Korean and English, from both members."""
    lines = [
        "안녕! 잘 잤어?",
        "Good morning! 오늘 날씨 좋다",
        "점심 뭐 먹을까?",
        "Let's get 비빔밥",
    ]
    with httpx.Client(base_url=server.http_url, timeout=10) as http:
        for i in range(HISTORY):
            token = couple["ta"] if i % 2 == 0 else couple["tb"]
            res = http.post(
                f"/chat/rooms/{couple['couple']}/messages",
                json={"type": "TEXT", "content": f"{lines[i % 4]} #{i + 1}", "tempId": f"h-{i}"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert res.status_code == 201, res.text


def _run(server: ServerProcess, couple: Couple, mode: str, folder: Path) -> dict[str, Any]:
    image = folder / "sunset.png"
    image.write_bytes(_png(160, 120))
    rest_text = f"REST로 보낸 메시지 while reconnecting ({mode})"
    driver = Driver(
        "demo_page.mjs",
        {
            "baseUrl": server.http_url,
            "tokenA": couple["ta"],
            "tokenB": couple["tb"],
            "history": HISTORY,
            "image": str(image),
            "artifacts": str(folder),
            "mode": mode,
            "chromium": chromium(),
            "restText": rest_text,
        },
        timeout=RUN_TIMEOUT,
    )
    last: dict[str, Any] = {}
    try:
        for event in driver.events():
            last = event
            if event["event"] == "stop-server":
                server.stop()
                driver.answer()
            elif event["event"] == "start-server":
                server.start()
                # Sent before the pages are back: they must get it by resuming from their seq.
                res = httpx.post(
                    f"{server.http_url}/chat/rooms/{couple['couple']}/messages",
                    json={"type": "TEXT", "content": rest_text, "tempId": f"rest-{mode}"},
                    headers={"Authorization": f"Bearer {couple['tb']}"},
                    timeout=10,
                )
                assert res.status_code == 201, res.text
                driver.answer()
    finally:
        code = driver.close()
        if server.proc is None:  # the run broke while the server was down
            server.start()
    assert code == 0, driver.report(last, code, folder)
    assert last.get("event") == "result", driver.report(last, code, folder)
    print(f"\ndemo page ({mode}): screenshots in {folder}")
    return last


@pytest.mark.external
@pytest.mark.parametrize("mode", ["websocket", "xhr-streaming"])
def test_two_members_chat_on_the_demo_page(
    server: ServerProcess, couple: Couple, mode: str
) -> None:
    node_ready()
    _seed_history(server, couple)
    folder = artifacts("demo_page", mode)
    result = _run(server, couple, mode, folder)
    # The stream numbers read receipts with the messages: message seqs skip.
    seqs = history_seqs(server, couple["ta"], couple["couple"])

    # History: the first page, then scrolled back by cursor to the very first message.
    assert result["firstPage"] == 30
    assert result["historyA"] == list(range(1, HISTORY + 1))
    assert result["partnerOnlineBefore"] == "false"
    assert result["langA"] == "ko"
    assert result["langB"] == "en"
    # While B was away A's text and image carried the "1"; B reading cleared every one.
    assert result["aSentUnread"] == [True, True]
    assert result["aUnreadAfterRead"] == 0
    assert result["bImage"]["width"] == 160
    assert result["bImage"]["src"].startswith(f"{server.http_url}/uploads/{couple['couple']}/")
    assert result["typingShown"] is True
    assert result["bAtBottom"] is True

    expected = "websocket" if mode == "websocket" else f"sockjs/{mode}"
    assert result["transportsBefore"] == [expected, expected]
    total = HISTORY + 2 + 1 + 1 + 1 + 1  # A: text, image; B: reply; A offline; REST; B after
    assert len(seqs) == total
    for who in ("a", "b"):
        page = result[who]
        assert page["conn"] == "connected"
        assert page["transport"] == expected  # reconnected over the same transport
        assert page["banner"] is False
        assert page["online"] == "true"
        assert page["atBottom"] is True
        stored = [m for m in page["messages"] if m["seq"] is not None]
        shown = [m["seq"] for m in stored]
        # Nothing lost, nothing twice, in order, nothing left pending (B never scrolled back:
        # it shows its first page and everything since: four messages).
        assert shown == (seqs if who == "a" else seqs[-(PAGE + 4) :]), shown
        # The stream as a whole (messages and read receipts) came without a gap, to its end.
        assert page["gaps"] == 0
        assert page["position"] == result["a"]["position"] >= seqs[-1]
        assert {m["state"] for m in stored} == {"sent"}
        assert not any(m["unread"] for m in stored)
        # No script error; on A's page the browser logs the refused upload (below), only.
        refused = "the server responded with a status of 415 (Unsupported Media Type)"
        assert all(who == "a" and refused in p for p in page["problems"]), page["problems"]
    # The refused upload stays on A's page only, failed, below the stored messages.
    unsent = [m for m in result["a"]["messages"] if m["seq"] is None]
    assert [(m["type"], m["state"]) for m in unsent] == [("IMAGE", "failed")]
    assert result["a"]["messages"][-1] == unsent[0]
    assert all(m["seq"] is not None for m in result["b"]["messages"])
    a_texts = {m["seq"]: m["text"] for m in result["a"]["messages"] if m["seq"] is not None}
    assert all(a_texts[m["seq"]] == m["text"] for m in result["b"]["messages"])
    texts = list(a_texts.values())
    assert "안녕하세요! 오늘 저녁 같이 먹을래요? (Dinner tonight?)" in texts
    assert f"REST로 보낸 메시지 while reconnecting ({mode})" in texts
    shots = [Path(p) for p in result["screenshots"]]
    assert len(shots) == 10
    assert all(p.is_file() and p.stat().st_size > 5000 for p in shots)


# -- the page's routes and the demo command, without a browser --------------------------------


def test_demo_page_and_its_libraries_are_served(server: ServerProcess) -> None:
    require(
        all((WEB_MODULES / rel).is_file() for rel in VENDOR_FILES.values()),
        "the demo page's SDK bundle is needed: run `make web` (builds clients/js, npm ci in web/)",
    )
    with httpx.Client(base_url=server.http_url, timeout=10) as http:
        page = http.get("/demo")
        assert page.status_code == 200
        assert page.headers["referrer-policy"] == "no-referrer"  # the URL holds a token
        scripts = re.findall(r'src="([^"]+)"', page.text)
        # The SDK's browser bundle first (the page's scripts use its global), then the page.
        assert scripts[0] == "/demo/vendor/ieum-chat.min.js"
        for src in scripts:
            script = http.get(src)
            assert script.status_code == 200, src
            assert script.headers["content-type"].startswith("text/javascript")
        assert b"IeumChat" in http.get(scripts[0]).content
        assert http.get("/demo/app.css").status_code == 200
        assert http.get("/demo/vendor/package.json").status_code == 404  # only the bundle
        # STOMP and SockJS are inside the SDK's bundle: not served on their own any more.
        assert http.get("/demo/vendor/stomp.umd.min.js").status_code == 404
        assert http.get("/demo/vendor/sockjs.min.js").status_code == 404
        assert http.get("/demo/nope.js").status_code == 404


def test_demo_page_explains_how_to_install_missing_libraries(cli: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "node_modules"
    empty.mkdir()
    env = {**SERVER_ENV, "IEUM_DEMO_ASSETS": str(empty)}
    server = ServerProcess(cli, tmp_path / "server.log", extra_env=env).start()
    try:
        page = httpx.get(f"{server.http_url}/demo", timeout=10)
    finally:
        server.stop()
    assert page.status_code == 503
    assert "make demo" in page.text
    assert str(empty) in page.text


def test_demo_command_prints_a_page_url_per_member(cli: Cli, tmp_path: Path) -> None:
    port = free_port()
    env = {**cli.env, **SERVER_ENV, "IEUM_DEMO_ASSETS": str(WEB_MODULES)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ieum_chat.cli", "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(9)]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    urls = [line.split()[-1] for line in lines if line.strip().startswith("open:")]
    tokens = [line.split()[-1] for line in lines if line.strip().startswith("token:")]
    assert len(urls) == 2
    assert urls == [f"http://127.0.0.1:{port}/demo?token={t}" for t in tokens]
