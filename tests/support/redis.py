"""The machine's Redis, for tests: a key prefix per test so that runs never collide.

Pub/Sub channels are shared by every database number of a Redis, so isolation is by prefix
(``IEUM_REDIS_PREFIX``), not by ``SELECT``. When Redis cannot be reached, tests that need it
are skipped on a developer's machine and FAIL when ``CI`` is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from redis.exceptions import RedisError

__all__ = [
    "REDIS_URL",
    "RedisServer",
    "delete_prefix",
    "redis_address",
    "require_redis",
    "unique_prefix",
]

REDIS_URL = os.environ.get("IEUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> None:
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except (RedisError, OSError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is required on CI ({REDIS_URL}): {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")


def redis_address() -> tuple[str, int]:
    """``(host, port)`` of the machine's Redis, for a proxy in front of it."""
    url = urlsplit(REDIS_URL)
    return url.hostname or "127.0.0.1", url.port or 6379


def unique_prefix() -> str:
    return f"ieum-test:{uuid.uuid4().hex[:12]}:"


def delete_prefix(prefix: str) -> None:
    """Remove every key under ``prefix`` (Redis has no persistence here; this keeps it tidy)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class RedisServer:
    """A ``redis-server`` of a test's own, on a spare loopback port, without persistence (as
    the README deploys it): it can be emptied, stopped and restarted without touching the
    machine's Redis."""

    def __init__(self, workdir: Path) -> None:
        from tests.support.server import free_port

        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @staticmethod
    def require() -> None:
        if shutil.which("redis-server") is None:
            if os.environ.get("CI"):
                pytest.fail("redis-server is required on CI (Debian package redis-server)")
            pytest.skip("redis-server is not installed")

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
                try:
                    client.ping()
                    return self
                finally:
                    client.close()
            except (RedisError, OSError):
                time.sleep(0.05)
        raise AssertionError(f"redis-server on port {self.port} did not start")

    def flush(self) -> None:
        """Every key gone, as after a restart without persistence."""
        client = redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)
        try:
            client.flushall()
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
