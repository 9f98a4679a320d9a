"""Run ``ieum-chat`` for real: the CLI in a subprocess, the server on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

__all__ = ["TEST_SECRET", "Cli", "ServerProcess", "free_port"]

TEST_SECRET = "ieum-chat-test-secret-0123456789-0123456789"
# Seconds a stopped server may take to exit (its grace is 10 s by default) before the test
# fails naming it.
STOP_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cli:
    """The ``ieum-chat`` command with a given environment."""

    env: dict[str, str]

    @classmethod
    def for_database(cls, database_url: str, **extra: str) -> Cli:
        env = dict(os.environ)
        env.update({"IEUM_DATABASE_URL": database_url, "IEUM_JWT_SECRET": TEST_SECRET, **extra})
        return cls(env)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "ieum_chat.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"ieum-chat {' '.join(args)} failed: {proc.stderr}")
        return proc

    def seed(self, couples: int = 1, ttl: int = 3600) -> list[dict[str, str]]:
        out = self.run("seed", "--couples", str(couples), "--ttl", str(ttl)).stdout
        rows: list[dict[str, str]] = json.loads(out)
        return rows


@dataclass
class ServerProcess:
    cli: Cli
    log_path: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat"

    def start(self, args: Sequence[str] = ()) -> ServerProcess:
        env = {**self.cli.env, **self.extra_env}
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ieum_chat.cli", "serve", "--port", str(self.port), *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early: {self.log_text()[-3000:]}")
            try:
                if httpx.get(f"{self.http_url}/healthz", timeout=1).status_code == 200:
                    self._check_build(env.get("IEUM_CHAT_BUILD"))
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not start: {self.log_text()[-3000:]}")

    def _check_build(self, build: str | None) -> None:
        """A run of the tests for one build of the protocol cores (IEUM_CHAT_BUILD, "pure" or
        "compiled") starts servers of that build: the ready line says which it runs (a log
        level above INFO leaves the line out)."""
        text = self.log_text()
        if build and " ready (" in text and f"protocol cores {build})" not in text:
            raise AssertionError(f"IEUM_CHAT_BUILD={build}, but the server says: {text[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        hung = False
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                hung = True
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        code = self.proc.returncode
        self.proc = None
        if hung:
            # A stop that hangs is a bug of the server's shutdown: say so, with its log.
            raise AssertionError(
                f"the server on port {self.port} was still running {STOP_TIMEOUT} s after "
                f"signal {sig}; killed. Log {self.log_path}:\n{self.log_text()[-3000:]}"
            )
        return code

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def info(self) -> dict[str, Any]:
        return {"url": self.ws_url, "log": str(self.log_path)}
