"""sockjs-client 1.6 + @stomp/stompjs 7 in Node.js over each SockJS transport, with the
token in the URL's query string and in the CONNECT headers (node/sockjs_chat.mjs)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.server import ServerProcess

NODE_DIR = Path(__file__).parent / "node"


# SQLite only: what is under test is the transport, not the store.
pytestmark = pytest.mark.backends("sqlite")


def node_ready() -> None:
    modules = NODE_DIR / "node_modules"
    if shutil.which("node") is None or not (modules / "sockjs-client").is_dir():
        pytest.fail("Node.js and the e2e node_modules (sockjs-client) are needed: run `make node`")


@pytest.mark.external
@pytest.mark.parametrize("via", ["query", "connect"])
@pytest.mark.parametrize("transport", ["websocket", "xhr-streaming", "xhr-polling", "eventsource"])
def test_sockjs_client_chats_over(
    server: ServerProcess, couple: dict[str, str], transport: str, via: str
) -> None:
    node_ready()
    proc = subprocess.run(
        [
            "node",
            "sockjs_chat.mjs",
            f"{server.http_url}/ws/chat",
            transport,
            via,
            couple["couple"],
            couple["ta"],
            couple["tb"],
        ],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    result = json.loads(proc.stdout)
    for member in ("a", "b"):
        assert result[member]["transport"] == transport  # no silent fallback
        assert result[member]["version"] == "1.2"
        assert result[member]["errors"] == []
    to_b = [m for m in result["b"]["messages"] if m.get("senderId") == couple["a"]]
    first = to_b[0]
    assert first["content"] == "안녕하세요! \u2028 </script>"
    assert first["seq"] == 1
    # The burst (36 messages of ~4 KB, past the 128 KiB streaming limit) arrives whole and
    # in order.
    burst = [m for m in to_b if m["tempId"].startswith("sj-burst-")]
    assert len(burst) == 36
    assert [m["seq"] for m in burst] == list(range(burst[0]["seq"], burst[0]["seq"] + 36))
    to_a = [m for m in result["a"]["messages"] if m.get("senderId") == couple["b"]]
    assert to_a[0]["type"] == "STICKER"
