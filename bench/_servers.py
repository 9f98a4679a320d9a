"""Servers for `compare`: an ieum-chat process on a fresh SQLite file or PostgreSQL database,
and the RabbitMQ Web-STOMP already running on this machine."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

from ._fleet import BenchError
from ._proc import find_listener_pid
from ._targets import Couple

__all__ = [
    "LOAD_ENV",
    "PG_ADMIN_URL",
    "IeumServer",
    "database_url",
    "ensure_web_stomp",
    "free_port",
    "ieum_cli",
    "read_metric",
    "read_metrics",
    "spawn_serve",
]

# The per-user message limits (20/s by default) would throttle a load test to nothing.
LOAD_ENV = {
    "IEUM_MESSAGE_RATE": "1000000",
    "IEUM_MESSAGE_BURST": "1000000",
    "IEUM_LOG_LEVEL": "WARNING",
}
# Where a bench creates and drops its throwaway databases (the machine's PostgreSQL).
PG_ADMIN_URL = "postgresql://root@127.0.0.1:5432/postgres"
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url(admin_url: str, name: str) -> str:
    """The URL of database ``name`` on the server that ``admin_url`` reaches, with its
    query (``?host=/var/run/postgresql``: the server's Unix socket) kept."""
    path, mark, query = admin_url.partition("?")
    return f"{path.rsplit('/', 1)[0]}/{name}{mark}{query}"


def spawn_serve(
    env: Mapping[str, str], port: int, log: IO[bytes], prefix: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """``ieum-chat serve --port PORT`` in a session of its own, as a service manager starts
    a daemon; its output to ``log``. ``prefix``: a command to run it under.

    Linux shares the CPU between sessions first (autogroup scheduling, on by default where
    ``/proc/sys/kernel/sched_autogroup_enabled`` says 1), then between a session's
    processes. RabbitMQ and every PostgreSQL backend run in sessions of their own; a server
    left in the generator's session would get one share with the generator on a busy
    machine, and wait for a core longer than the peers it is compared with."""
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "ieum_chat.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def ieum_cli(db_url: str, *args: str, env: Mapping[str, str] | None = None) -> str:
    """``ieum-chat ARGS`` on the database at ``db_url`` (``migrate``, ``seed``...); its
    standard output. ``env``: the command's environment (by default this process's, with a
    JWT secret of its own)."""
    if env is None:
        env = {**os.environ, "IEUM_JWT_SECRET": "bench-" + uuid.uuid4().hex}
    proc = subprocess.run(
        [sys.executable, "-m", "ieum_chat.cli", *args],
        env={**env, "IEUM_DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"ieum-chat {args[0]} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def read_metrics(url: str) -> dict[str, float]:
    """Every sample the server at ``url`` (http://host:port) exposes, by its name with its
    labels as written (``ieum_write_transaction_seconds_bucket{kind="messages",le="0.001"}``)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples


def read_metric(url: str, name: str) -> float:
    """The value of an unlabelled metric of the server at ``url`` (http://host:port); 0 when
    it has not been counted yet."""
    return read_metrics(url).get(name, 0.0)


def _pg_admin(admin_url: str, sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    async def run() -> None:
        conn = await asyncpg.connect(admin_url, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


class IeumServer:
    """``ieum-chat serve`` on a free loopback port, its database migrated and seeded."""

    def __init__(
        self,
        backend: Literal["sqlite", "postgresql"],
        workdir: Path,
        couples: int,
        pg_admin_url: str = PG_ADMIN_URL,
        extra_env: dict[str, str] | None = None,
        *,
        command_prefix: Sequence[str] = (),
        start_timeout: float = _START_TIMEOUT,
        src: Path | None = None,
    ) -> None:
        """``command_prefix``: what ``serve`` runs under (a profiler); ``start_timeout``: how
        long it may take to answer ``/healthz`` (longer under such a prefix); ``src``: a source
        tree whose ``src/`` the server runs instead of the installed package (another commit's
        checkout, or ``build/compiled``, the compiled protocol cores)."""
        self.backend = backend
        self.workdir = workdir
        self.couples_wanted = couples
        self.pg_admin_url = pg_admin_url
        self.port = free_port()
        self.db_name: str | None = None
        self.couples: list[Couple] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"ieum-{backend}.log"
        self.env = {**os.environ, **LOAD_ENV, "IEUM_JWT_SECRET": secrets.token_hex(32)}
        self.env.update(extra_env or {})
        if src is not None:
            self.env["PYTHONPATH"] = str((src / "src").resolve())
        self.command_prefix = tuple(command_prefix)
        self.start_timeout = start_timeout

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def db_match(self) -> tuple[str, ...]:
        """Command-line substrings of the PostgreSQL processes that work for this server."""
        if self.db_name is None:
            return ()
        return (f" {self.db_name} ", "walwriter", "checkpointer", "background writer")

    def _cli(self, *args: str) -> str:
        return ieum_cli(self.env["IEUM_DATABASE_URL"], *args, env=self.env)

    def __enter__(self) -> IeumServer:
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        if self.backend == "sqlite":
            self.env["IEUM_DATABASE_URL"] = f"sqlite:///{self.workdir / 'chat.db'}"
        else:
            self.db_name = f"ieum_bench_{uuid.uuid4().hex[:12]}"
            _pg_admin(self.pg_admin_url, f'CREATE DATABASE "{self.db_name}"')
            self.env["IEUM_DATABASE_URL"] = database_url(self.pg_admin_url, self.db_name)
        self._cli("migrate")
        rows = json.loads(self._cli("seed", "--couples", str(self.couples_wanted)))
        self.couples = [Couple.from_row(row) for row in rows]
        log = self.log_path.open("ab")
        self.proc = spawn_serve(self.env, self.port, log, self.command_prefix)
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"ieum-chat exited at start: {self._log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise BenchError(f"ieum-chat did not start: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-800:]
        except OSError:
            return ""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.db_name is not None:
            _pg_admin(self.pg_admin_url, f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            self.db_name = None


def ensure_web_stomp(port: int, enable: bool) -> int:
    """The pid of the process serving Web-STOMP on `port`; enables the plugin when asked."""
    pid = find_listener_pid(port)
    if pid is None and enable and shutil.which("rabbitmq-plugins"):
        print("enabling rabbitmq_web_stomp (rabbitmq-plugins enable)", file=sys.stderr)
        subprocess.run(
            ["rabbitmq-plugins", "enable", "rabbitmq_web_stomp"],
            capture_output=True,
            timeout=120,
            check=False,
        )
        for _ in range(50):
            pid = find_listener_pid(port)
            if pid is not None:
                break
            time.sleep(0.2)
    if pid is None:
        raise BenchError(
            f"nothing listens on :{port}; run `rabbitmq-plugins enable rabbitmq_web_stomp`"
        )
    return pid
