"""Throwaway databases on the machine's PostgreSQL, for tests.

When PostgreSQL cannot be reached, tests that need it are skipped on a developer's machine
and FAIL when ``CI`` is set: on CI a missing service is a broken build, not a skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import pytest

__all__ = [
    "ADMIN_URL",
    "create_database",
    "drop_database",
    "lock_waiters",
    "postgres_address",
    "require_postgres",
    "through_port",
    "throwaway_database",
]

ADMIN_URL = os.environ.get("IEUM_TEST_PG_URL", "postgresql://root@127.0.0.1:5432/test")


def _fail_or_skip(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required on CI: {reason}")
    pytest.skip(f"PostgreSQL not reachable: {reason}")


async def _admin() -> asyncpg.Connection:
    return await asyncpg.connect(ADMIN_URL, timeout=5)


def postgres_address() -> tuple[str, int]:
    """``(host, port)`` of the machine's PostgreSQL, for a proxy in front of it."""
    url = urlsplit(ADMIN_URL)
    return url.hostname or "127.0.0.1", url.port or 5432


def through_port(url: str, port: int) -> str:
    """``url`` reached on loopback ``port`` instead (a proxy in front of PostgreSQL)."""
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo}{at}127.0.0.1:{port}"))


def require_postgres() -> None:
    async def probe() -> None:
        conn = await _admin()
        await conn.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        _fail_or_skip(str(exc))


def create_database(prefix: str = "ieum_test") -> str:
    """Create an empty database and return its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        conn = await _admin()
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    base = ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


@contextlib.contextmanager
def throwaway_database() -> Iterator[str]:
    """An empty database's SQLAlchemy URL (PostgreSQL required), dropped afterwards."""
    require_postgres()
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]

    async def drop() -> None:
        conn = await _admin()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


async def lock_waiters(conn: asyncpg.Connection, *, present: bool) -> list[int]:
    """Poll, over ``conn``, until some backend of its database waits on a lock (or none
    does); the pids of those that wait."""
    async with asyncio.timeout(10):
        while True:
            pids = [row["pid"] for row in await conn.fetch(_LOCK_WAITERS)]
            if bool(pids) == present:
                return pids
            await asyncio.sleep(0.02)


_LOCK_WAITERS = (
    "SELECT pid FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
)
