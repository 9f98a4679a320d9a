"""@stomp/stompjs 7 over the `ws` package in Node.js: subprotocols offered, token in CONNECT."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import ServerProcess

NODE_DIR = Path(__file__).parent / "node"


def node_ready() -> None:
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "@stomp").is_dir():
        pytest.fail("Node.js and the e2e node_modules are needed: run `make node`")


def test_stompjs_members_chat_and_outsider_is_refused(
    server: ServerProcess,
    couple: dict[str, str],
    couple_pool: Any,
) -> None:
    node_ready()
    outsider = next(couple_pool)
    proc = subprocess.run(
        [
            "node",
            "chat.mjs",
            server.ws_url,
            couple["couple"],
            couple["ta"],
            couple["tb"],
            outsider["ta"],
        ],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    result = json.loads(proc.stdout)
    assert result["versions"] == ["1.2", "1.2"]
    a_texts = [m for m in result["b"]["messages"] if m.get("tempId") == "js-a-1"]
    assert len(a_texts) == 1
    assert a_texts[0]["content"] == "안녕하세요!"
    assert a_texts[0]["seq"] == 1
    stickers = [m for m in result["a"]["messages"] if m.get("tempId") == "js-b-1"]
    assert stickers[0]["seq"] == 2
    receipts = [m for m in result["a"]["messages"] if m.get("type") == "READ_RECEIPT"]
    assert receipts[0]["messageIds"] == [a_texts[0]["id"]]
    typing = [m for m in result["a"]["messages"] if m.get("event") == "TYPING"]
    assert typing[0]["userId"] == couple["b"]
    codes = [e["code"] for e in result["c"]["errors"]]
    assert codes == ["UNAUTHORIZED", "UNAUTHORIZED"]
    assert result["c"]["errors"][1]["tempId"] == "js-c-1"
    assert result["c"]["messages"] == []
    assert all(m.get("tempId") != "js-c-1" for m in result["b"]["messages"])
