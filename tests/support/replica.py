"""A PostgreSQL primary and its streaming replica of our own, for the read-replica tests.

The machine's PostgreSQL takes no replication connections, so this starts two servers of
its own from the PostgreSQL binaries (``IEUM_TEST_PG_BIN``, default
``/usr/lib/postgresql/15/bin``) in a temporary directory, on spare loopback ports: a primary
(``wal_level=replica``, replication allowed from loopback) and a replica made with
``pg_basebackup -R -X stream``. PostgreSQL refuses to run as root: as root, every binary runs
as the ``postgres`` OS user (``runuser``).

Missing binaries skip the tests on a developer's machine and fail them when ``CI`` is set.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from tests.support.server import free_port

__all__ = ["PG_BIN", "Cluster", "require_binaries"]

PG_BIN = Path(os.environ.get("IEUM_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
_OS_USER = "postgres"
_DATABASE = "chat"
# Seconds to wait for a server to come up, or the replica to stream or catch up (failure
# guards: the waits end as soon as the condition holds).
_GUARD = 60.0


def require_binaries() -> None:
    missing = [
        name
        for name in ("initdb", "pg_ctl", "pg_basebackup", "postgres")
        if not (PG_BIN / name).exists()
    ]
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        missing.append("runuser")
    if not missing:
        return
    reason = f"PostgreSQL binaries missing in {PG_BIN}: {', '.join(missing)}"
    if os.environ.get("CI"):
        pytest.fail(f"a primary and replica are required on CI: {reason}")
    pytest.skip(reason)


def _run(*args: str | Path) -> None:
    command = [str(a) for a in args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", _OS_USER, "--", *command]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed: {proc.stdout}\n{proc.stderr}")


@dataclass
class Cluster:
    """A primary and a streaming replica, each a ``postgres`` on a loopback port."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ieum-replica-")))
    primary_port: int = field(default_factory=free_port)
    replica_port: int = field(default_factory=free_port)

    @property
    def primary_dir(self) -> Path:
        return self.root / "primary"

    @property
    def replica_dir(self) -> Path:
        return self.root / "replica"

    def url(self, port: int, database: str = _DATABASE) -> str:
        return f"postgresql://{_OS_USER}@127.0.0.1:{port}/{database}"

    @property
    def primary_url(self) -> str:
        return self.url(self.primary_port)

    @property
    def replica_url(self) -> str:
        return self.url(self.replica_port)

    def start(self) -> Cluster:
        if os.geteuid() == 0:
            owner = pwd.getpwnam(_OS_USER)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        _run(
            PG_BIN / "initdb", "-D", self.primary_dir, "-U", _OS_USER, "--auth=trust",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        self._configure(self.primary_dir, self.primary_port, primary=True)
        self.start_server(self.primary_dir)
        asyncio.run(self._create_database())
        _run(
            PG_BIN / "pg_basebackup", "-R", "-X", "stream", "--checkpoint=fast",
            "-D", self.replica_dir, "-h", "127.0.0.1", "-p", str(self.primary_port),
            "-U", _OS_USER,
        )  # fmt: skip
        # The base backup copied the primary's settings: the replica listens elsewhere.
        self._configure(self.replica_dir, self.replica_port, primary=False)
        self.start_server(self.replica_dir)
        asyncio.run(self.wait_streaming())
        return self

    def _configure(self, data: Path, port: int, *, primary: bool) -> None:
        settings = [
            f"port = {port}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{self.root}'",
            "fsync = off",  # a throwaway cluster: durability is not what is tested
            "max_connections = 50",
            "hot_standby = on",
        ]
        if primary:
            settings += ["wal_level = replica", "max_wal_senders = 4"]
        _append_as_owner(data / "postgresql.conf", "\n".join(settings) + "\n")
        if primary:
            _append_as_owner(data / "pg_hba.conf", "host replication all 127.0.0.1/32 trust\n")

    def start_server(self, data: Path) -> None:
        log = self.root / f"{data.name}.log"
        _run(PG_BIN / "pg_ctl", "-D", data, "-l", log, "-w", "-t", str(int(_GUARD)), "start")

    def stop_server(self, data: Path) -> None:
        if (data / "postmaster.pid").exists():
            _run(PG_BIN / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        try:
            self.stop_server(self.replica_dir)
        finally:
            try:
                self.stop_server(self.primary_dir)
            finally:
                shutil.rmtree(self.root, ignore_errors=True)

    async def _create_database(self) -> None:
        conn = await asyncpg.connect(self.url(self.primary_port, "postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{_DATABASE}"')
        finally:
            await conn.close()

    async def wait_streaming(self) -> None:
        """Until the replica is in recovery and the primary streams to it."""
        replica = await self._connect(self.replica_port)
        primary = await self._connect(self.primary_port)
        try:
            assert await replica.fetchval("SELECT pg_is_in_recovery()")
            query = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
            await _until(lambda: primary.fetchval(query), "the replica to stream")
        finally:
            await replica.close()
            await primary.close()

    async def wait_replayed(self) -> None:
        """Until the replica has replayed everything the primary has written so far."""
        primary = await self._connect(self.primary_port)
        try:
            lsn = await primary.fetchval("SELECT pg_current_wal_lsn()")
        finally:
            await primary.close()
        replica = await self._connect(self.replica_port)
        try:
            query = "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn"
            await _until(lambda: replica.fetchval(query, lsn), f"the replica to replay {lsn}")
        finally:
            await replica.close()

    async def pause_replay(self) -> None:
        replica = await self._connect(self.replica_port)
        try:
            await replica.execute("SELECT pg_wal_replay_pause()")
            query = "SELECT pg_get_wal_replay_pause_state() = 'paused'"
            await _until(lambda: replica.fetchval(query), "the replay to pause")
        finally:
            await replica.close()

    async def resume_replay(self) -> None:
        replica = await self._connect(self.replica_port)
        try:
            await replica.execute("SELECT pg_wal_replay_resume()")
        finally:
            await replica.close()

    async def _connect(self, port: int) -> asyncpg.Connection:
        return await asyncpg.connect(self.url(port), timeout=10)


def _append_as_owner(path: Path, text: str) -> None:
    with path.open("a") as file:  # as root the file stays the postgres user's
        file.write(text)


async def _until(probe: Callable[[], Awaitable[object]], what: str) -> None:
    deadline = time.monotonic() + _GUARD
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {_GUARD:g}s for {what}")
        await asyncio.sleep(0.05)
