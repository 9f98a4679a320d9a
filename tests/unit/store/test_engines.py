"""The dialect policies' choices that need no database: how messages are appended, the
append pool's connect arguments, and when a WAL checkpointer's passes run and how it stops (on
a SQLite file of the test's own: empty, where a pass copies nothing, or with a WAL of a few
pages)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import QueuePool

from ieum_chat.store.appends import ServerAppender, SqliteAppender
from ieum_chat.store.engines import (
    APPEND_SETTINGS,
    PostgresEngine,
    create_engine,
    normalize_url,
)
from ieum_chat.store.pool import DatabasePool
from ieum_chat.store.row_reads import RawRowReader, TransactionRowReader
from ieum_chat.store.sqlite_writer import WalCheckpointer


async def test_append_connect_args_follow_the_url() -> None:
    url = normalize_url(
        "postgres://chat:p%40ss%3Aword@db.example:5433/ieum?ssl=require"
        "&prepared_statement_cache_size=50"
    )
    engine = create_async_engine(url)
    try:
        args = PostgresEngine().raw_connect_args(engine, APPEND_SETTINGS)
    finally:
        await engine.dispose()
    assert args == {
        "host": "db.example",
        "port": 5433,
        "user": "chat",
        "password": "p@ss:word",
        "database": "ieum",
        "ssl": "require",
        # as the engine's own connections (PostgresEngine.engine_kwargs)
        "timeout": 5,
        "command_timeout": 30,
        "server_settings": {
            "application_name": "ieum-chat",
            "default_transaction_isolation": "read committed",
            "plan_cache_mode": "force_generic_plan",
            "enable_seqscan": "off",
        },
    }


async def test_append_connect_args_unix_socket() -> None:
    engine = create_async_engine(normalize_url("postgresql://chat@/ieum?host=/run/postgresql"))
    try:
        args = PostgresEngine().raw_connect_args(engine, APPEND_SETTINGS)
    finally:
        await engine.dispose()
    assert (args["host"], args["user"], args["database"]) == ("/run/postgresql", "chat", "ieum")
    assert "port" not in args


async def test_sqlite_appends_and_reads_in_transactions(tmp_path: Path) -> None:
    policy, engine = create_engine(f"sqlite:///{tmp_path}/x.db")
    db_pool = DatabasePool(policy, engine, pool_size=10)
    try:
        assert isinstance(db_pool.appender, SqliteAppender)
        assert isinstance(db_pool.reader, TransactionRowReader)
    finally:
        await db_pool.close()


SQLITE_SETTINGS = ("journal_mode", "synchronous", "wal_autocheckpoint", "journal_size_limit")


def _pragmas(conn: Connection) -> tuple[object, ...]:
    return tuple(conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in SQLITE_SETTINGS)


async def test_sqlite_connections_and_the_writer_share_their_settings(tmp_path: Path) -> None:
    """WAL, synchronous FULL (a RECEIPT survives a power cut), a checkpoint every 10,000
    pages and the WAL cut back to 64 MiB after one: on the loop's connections (reads) and on
    the writer's (every write transaction)."""
    policy, engine = create_engine(f"sqlite:///{tmp_path}/x.db")
    db_pool = DatabasePool(policy, engine, pool_size=2)
    expected = ("wal", 2, 10000, 64 * 2**20)
    try:
        assert await db_pool.read_txn("pragmas", _pragmas) == expected
        assert await db_pool.write_txn("pragmas", _pragmas) == expected
        assert db_pool.writer is not None  # a file: writes on the writer's thread
    finally:
        await db_pool.close()


def _cache_size(conn: Connection) -> object:
    return conn.exec_driver_sql("PRAGMA cache_size").scalar()


async def test_sqlite_readers_keep_a_small_page_cache_and_the_writer_the_default(
    tmp_path: Path,
) -> None:
    """The pool's connections of a file only read, and SQLite would give each of them 2 MiB
    of cache, mostly copies of the same pages: 256 KiB each. The writer keeps SQLite's
    default (-2000: 2,000 KiB), and so do migrations, whose index builds sort in it."""
    url = f"sqlite:///{tmp_path}/x.db"
    policy, engine = create_engine(url)
    db_pool = DatabasePool(policy, engine, pool_size=2)
    try:
        assert await db_pool.read_txn("cache", _cache_size) == -256
        assert await db_pool.write_txn("cache", _cache_size) == -2000
    finally:
        await db_pool.close()
    _, engine = create_engine(url, for_migrations=True)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_cache_size) == -2000
    finally:
        await engine.dispose()


def test_sqlite_keeps_two_reading_connections_whatever_pool_is_asked_for(
    tmp_path: Path,
) -> None:
    """More threads do not read a SQLite file faster, and each costs memory: a pool of 10
    asked for is 2; a pool of 1 stays 1."""
    for asked, kept in ((10, 2), (1, 1)):
        _, engine = create_engine(f"sqlite:///{tmp_path}/x.db", pool_size=asked)
        pool = engine.sync_engine.pool
        assert isinstance(pool, QueuePool)
        assert pool.size() == kept


async def test_postgres_appends_and_reads_through_small_pools_of_their_own() -> None:
    policy, engine = create_engine("postgresql://chat@localhost/ieum")
    small = DatabasePool(policy, engine, pool_size=2)
    large = DatabasePool(policy, engine, pool_size=50)
    try:
        assert isinstance(small.appender, ServerAppender)
        assert isinstance(large.appender, ServerAppender)
        assert isinstance(small.reader, RawRowReader)
        assert isinstance(large.reader, RawRowReader)
        # nothing connects until the first append, or read
        assert (small.appender.pool.size, large.appender.pool.size) == (2, 4)
        assert (small.reader.pool.size, large.reader.pool.size) == (2, 8)
        assert small.reader.pool is not small.appender.pool
    finally:
        await small.close()
        await large.close()


async def test_a_checkpointer_that_cannot_open_its_file_leaves_the_work_to_the_writer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a file in a directory that does not exist: SQLite cannot open it
    engine = sa_create_engine(f"sqlite+pysqlite:///{tmp_path / 'missing' / 'chat.db'}")
    with caplog.at_level(logging.WARNING, logger="ieum_chat.store.engines"):
        checkpoints = WalCheckpointer(engine, _BOUND)
        checkpoints.written()
        await checkpoints.close()  # returns: the thread has ended

    assert "WAL checkpoints left to the writer" in caplog.text


# The writer's bound on the WAL, in pages, as the checkpointer is told of it.
_BOUND = 10_000
# A bound on waiting for a pass that is due at once, not a figure under test.
_PATIENCE_SECONDS = 30.0


class _Counted(WalCheckpointer):
    """A checkpointer that counts its passes, tells of each (``entered``) and, once ``hold`` is
    set, holds each until ``release`` is."""

    def __init__(self, path: Path, interval: float, wal_bound: int = _BOUND) -> None:
        self.passes = 0
        self.hold = False
        self.entered = threading.Event()
        self.release = threading.Event()
        super().__init__(sa_create_engine(f"sqlite+pysqlite:///{path}"), wal_bound, interval)

    def _checkpoint(self, conn: Any) -> None:
        self.passes += 1
        self.entered.set()
        if self.hold:
            self.release.wait()
        super()._checkpoint(conn)

    async def next_pass(self, timeout: float = _PATIENCE_SECONDS) -> bool:
        """Whether a pass begins within ``timeout`` seconds of the last one's (which is then
        forgotten)."""
        began = await asyncio.to_thread(self.entered.wait, timeout)
        self.entered.clear()
        return began


async def test_the_first_pass_follows_a_write_at_once_and_the_next_gathers_writes(
    tmp_path: Path,
) -> None:
    checkpoints = _Counted(tmp_path / "chat.db", interval=0.05)
    try:
        await asyncio.sleep(0.2)
        idle = checkpoints.passes
        checkpoints.written()  # the WAL's size is not known yet: a pass at once
        assert await checkpoints.next_pass()
        checkpoints.written()
        checkpoints.written()
        assert await checkpoints.next_pass()
        await asyncio.sleep(0.2)
        assert (idle, checkpoints.passes) == (0, 2)  # two writes, one pass
    finally:
        await checkpoints.close()


def _hold_a_wal(path: Path, pages: int) -> sqlite3.Connection:
    """A connection that left about ``pages`` pages in the WAL of ``path`` and keeps it open
    (the last connection to close would checkpoint it and remove it)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE pages (data BLOB)")
    for _ in range(pages):
        conn.execute("INSERT INTO pages VALUES (zeroblob(4000))")
    return conn


async def test_passes_follow_writes_at_once_while_the_wal_is_at_half_its_bound(
    tmp_path: Path,
) -> None:
    holder = _hold_a_wal(tmp_path / "chat.db", 30)
    # the interval is beyond the patience: a pass that waited for it would not be seen
    checkpoints = _Counted(tmp_path / "chat.db", interval=1e6, wal_bound=40)
    try:
        checkpoints.written()
        assert await checkpoints.next_pass()  # the first: finds 30 pages or more of 40
        checkpoints.written()
        assert await checkpoints.next_pass()
        checkpoints.written()
        assert await checkpoints.next_pass()
    finally:
        await checkpoints.close()
        holder.close()


async def test_writes_gather_again_once_a_pass_finds_the_wal_short(tmp_path: Path) -> None:
    holder = _hold_a_wal(tmp_path / "chat.db", 30)
    checkpoints = _Counted(tmp_path / "chat.db", interval=1e6, wal_bound=_BOUND)
    try:
        checkpoints.written()
        assert await checkpoints.next_pass()  # the first, at once: 30 pages are few of 10,000
        checkpoints.written()
        # the interval is beyond the test: a pass within it did not gather the writes
        assert not await checkpoints.next_pass(timeout=0.5)
        assert checkpoints.passes == 1
    finally:
        await checkpoints.close()
        holder.close()


class _Failing(_Counted):
    """A checkpointer whose passes fail (their connection is closed)."""

    def _checkpoint(self, conn: Any) -> None:
        closed = sqlite3.connect(":memory:")
        closed.close()
        super()._checkpoint(closed)


async def test_a_failing_pass_waits_for_the_interval_not_for_each_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoints = _Failing(tmp_path / "chat.db", interval=1e6)
    try:
        with caplog.at_level(logging.WARNING, logger="ieum_chat.store.sqlite_writer"):
            checkpoints.written()
            assert await checkpoints.next_pass()  # the first, at once: it fails
            checkpoints.written()
            assert not await checkpoints.next_pass(timeout=0.5)
        assert checkpoints.passes == 1
        assert "WAL checkpoint failed, left to the writer" in caplog.text
    finally:
        await checkpoints.close()


async def test_closing_runs_no_pass_of_the_writes_still_gathering(tmp_path: Path) -> None:
    # the interval is long against the test, not against a bound of it: a close that waited it
    # out would then run the pass, and be counted
    checkpoints = _Counted(tmp_path / "chat.db", interval=5.0)
    checkpoints.written()
    assert await checkpoints.next_pass()  # the first, at once
    checkpoints.written()
    await checkpoints.close()

    assert checkpoints.passes == 1


async def test_closing_during_a_pass_ends_the_thread_after_it(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    checkpoints = _Counted(tmp_path / "chat.db", interval=0)
    checkpoints.hold = True
    [thread] = [t for t in threading.enumerate() if t not in before]
    checkpoints.written()
    await asyncio.to_thread(checkpoints.entered.wait)
    closing = asyncio.create_task(checkpoints.close())
    await asyncio.sleep(0)  # close() has said so, and waits for the thread
    checkpoints.written()  # a write after close() asked for none: no pass for it
    checkpoints.release.set()
    await closing

    assert checkpoints.passes == 1
    assert not thread.is_alive()
