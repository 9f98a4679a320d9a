"""What the demo page's browser tests share: finding Chromium, Node.js and the npm installs, a
folder for screenshots, and the node driver (node/demo_*.mjs) that talks JSON lines.

Screenshots are kept in ``artifacts/<name>/`` at the repository root (git-ignored;
``IEUM_TEST_ARTIFACTS`` names another folder). With ``CI`` set a missing Chromium, Node.js or
npm install fails the test; elsewhere it is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ieum_chat.demo import VENDOR_FILES
from tests.support.server import ServerProcess

__all__ = [
    "NODE_DIR",
    "ROOT",
    "WEB_MODULES",
    "Couple",
    "Driver",
    "artifacts",
    "chromium",
    "history_seqs",
    "node_ready",
    "require",
]

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = Path(__file__).parent / "node"
WEB_MODULES = ROOT / "web" / "node_modules"

Couple = dict[str, str]


def require(ok: bool, why: str) -> None:
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def chromium() -> str:
    found = os.environ.get("IEUM_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    require(Path(found).is_file(), "Chromium is needed: apt-get install chromium (.ci/run does)")
    return found


def node_ready() -> None:
    require(shutil.which("node") is not None, "Node.js is needed: run `make node`")
    require(
        (NODE_DIR / "node_modules" / "playwright-core").is_dir(),
        "playwright-core is needed: run `make node` (npm ci in tests/e2e/node)",
    )
    require(
        all((WEB_MODULES / rel).is_file() for rel in VENDOR_FILES.values()),
        "the demo page's SDK bundle is needed: run `make web` (builds clients/js, npm ci in web/)",
    )


def artifacts(*name: str) -> Path:
    """An empty folder for a run's screenshots."""
    base = Path(os.environ.get("IEUM_TEST_ARTIFACTS") or ROOT / "artifacts")
    folder = base.joinpath(*name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def history_seqs(server: ServerProcess, token: str, room: str) -> list[int]:
    """The seqs of every message the member sees, oldest first (by the REST cursor)."""
    seqs: list[int] = []
    with httpx.Client(base_url=server.http_url, timeout=10) as http:
        while True:
            res = http.get(
                f"/chat/rooms/{room}/messages",
                params={"after": seqs[-1] if seqs else 0, "order": "asc", "limit": 100},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert res.status_code == 200, res.text
            page = res.json()
            seqs += [m["seq"] for m in page["messages"]]
            if not page["hasMore"]:
                return seqs


class Driver:
    """``node SCRIPT CONFIG_JSON`` in ``NODE_DIR``: its JSON lines, and the answers to its
    requests (one line on stdin each)."""

    def __init__(self, script: str, config: dict[str, Any], *, timeout: float) -> None:
        self.proc = subprocess.Popen(
            ["node", script, json.dumps(config)],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr: list[str] = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        # Node has its own deadline; this one guards against a hung browser launch.
        self.watchdog = threading.Timer(timeout, self.proc.kill)
        self.watchdog.start()

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr.extend(self.proc.stderr)

    def events(self) -> Iterator[dict[str, Any]]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                yield json.loads(line)

    def answer(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("done\n")
        self.proc.stdin.flush()

    def close(self) -> int:
        """Its exit status. Closing stdin ends a run still waiting for an answer (it fails)."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self.watchdog.cancel()

    def report(self, last: dict[str, Any], code: int, folder: Path) -> str:
        """What to print when the run failed: its last line and the end of its stderr."""
        stderr = "".join(self.stderr)[-3000:]
        shown = json.dumps(last, ensure_ascii=False)[:6000]
        return f"screenshots in {folder}\nexit status {code}\n{shown}\nstderr: {stderr}"


def run_script(
    script: str, config: dict[str, Any], folder: Path, *, timeout: float
) -> dict[str, Any]:
    """Run a driver that asks nothing of its caller to its end: its result line (else the
    test fails with the run's report)."""
    driver = Driver(script, config, timeout=timeout)
    last: dict[str, Any] = {}
    try:
        for event in driver.events():
            last = event
    finally:
        code = driver.close()
    assert code == 0, driver.report(last, code, folder)
    assert last.get("event") == "result", driver.report(last, code, folder)
    return last


def run_couple_script(
    script: str, server: ServerProcess, couple: dict[str, str], *, timeout: float, **extra: Any
) -> tuple[dict[str, Any], Path]:
    """Run ``script`` for the couple's two members on ``server`` (their tokens, the room, a
    folder for its screenshots, the browser; ``extra`` on top): its result and the folder."""
    folder = artifacts(script.removesuffix(".mjs"))
    config = {
        "baseUrl": server.http_url,
        "tokenA": couple["ta"],
        "tokenB": couple["tb"],
        "roomId": couple["couple"],
        "artifacts": str(folder),
        "chromium": chromium(),
        **extra,
    }
    return run_script(script, config, folder, timeout=timeout), folder
