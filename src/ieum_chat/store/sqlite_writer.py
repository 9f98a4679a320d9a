"""SQLite's writes on a thread of their own (:class:`ThreadWriter`), and the WAL copied back
to the database file on another beside it (:class:`WalCheckpointer`). ``engines.SqliteEngine``
makes both for a database file, with the connections set up as the engine's."""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import exc
from sqlalchemy.engine import Connection, Engine

__all__ = ["ThreadWriter", "WalCheckpointer"]

P = ParamSpec("P")
T = TypeVar("T")
logger = logging.getLogger(__name__)


class ThreadWriter:
    """Write transactions on a thread of their own, each in one hop from the event loop.

    Through the async driver, every statement of a transaction is a round trip between the
    event loop and the driver's thread; a SQLite batch append (five statements, a commit)
    spent more time in those hops and in the loop's share of the work than in SQLite. Here
    the whole transaction function runs on one thread, over a synchronous connection of the
    same file set up as the engine's (the same pragmas, ``BEGIN IMMEDIATE``), and only its
    result comes back. One thread, one connection: SQLite has one writer per file anyway.

    A caller cancelled while its transaction runs stops waiting; the transaction finishes (or
    rolls back) on the thread before the next one starts. ``checkpoints`` is told of every
    transaction and closed with the writer."""

    def __init__(
        self, engine: Engine, options: dict[str, Any], checkpoints: WalCheckpointer
    ) -> None:
        self._engine = engine
        self._options = options
        self._checkpoints = checkpoints
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ieum-db-writer")

    async def run(
        self, func: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._thread, functools.partial(self._transaction, func, *args, **kwargs)
        )

    def _transaction(
        self, func: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        try:
            with self._engine.connect() as conn:
                conn.execution_options(**self._options)
                with conn.begin():
                    return func(conn, *args, **kwargs)
        finally:
            self._checkpoints.written()

    async def close(self) -> None:
        await self._checkpoints.close()
        # The connection is closed on the thread that opened it (sqlite3 insists).
        await asyncio.get_running_loop().run_in_executor(self._thread, self._engine.dispose)
        await asyncio.to_thread(self._thread.shutdown)


# How long the checkpointer lets writes gather before a pass while the WAL is short of half its
# bound. At a steady 3,000 messages/s on SQLite (half of a 2-core machine's peak), the writer's
# own checkpoint every 10,000 WAL pages stalled it for 8 to 12.5 ms about every 0.44 s, most of
# it the database file's fdatasync. Passes every 0.1 s took the p99 from send to partner
# delivery from 15.1-19.3 to 13.5-17.7 ms on one machine, but on another left the writer's
# checkpoints as they were (35 to 40 in 18 s); with passes at once from half the bound, 0 to 11
# (docs/benchmarks.md).
_CHECKPOINT_INTERVAL = 0.1


class WalCheckpointer:
    """Copies a SQLite file's WAL back into the database file on a thread of its own, beside
    the writer, instead of in the writer's commits.

    Every commit that takes the WAL past ``wal_autocheckpoint`` pages (``wal_bound``)
    checkpoints it there and then, and the next transaction waits: the pages are copied in
    page order, but the database file's fdatasync of them takes milliseconds. Here a
    ``PASSIVE`` checkpoint runs once writes have gathered for ``_CHECKPOINT_INTERVAL``; it
    takes no lock that a writer or a reader waits for, and copies what no reader still needs.
    SQLite starts the WAL over when a write begins with all of it copied back, which a pass
    every interval beside a busy writer seldom finds. So once a pass finds the WAL at half its
    bound or more (and before the first pass has told its size), the next pass follows the
    next write at once: each copies about one transaction's pages, one of them ends between
    two transactions with everything copied, and the WAL starts over before the writer's own
    checkpoint is due. That checkpoint stays as the bound of the WAL, and copies whatever is
    left should the passes fall behind or fail (then it does it all, as without this thread).

    Several processes on one file each run one; a pass that finds another running returns at
    once (``SQLITE_BUSY`` is not an error for ``PASSIVE``)."""

    def __init__(
        self, engine: Engine, wal_bound: int, interval: float = _CHECKPOINT_INTERVAL
    ) -> None:
        self._engine = engine
        self._interval = interval
        # From half the bound on, passes follow writes at once; so does the first, as a WAL
        # left by a process before may be of any size.
        self._hurry_at = wal_bound // 2
        self._hurry = True
        # Both flags change under the condition's lock: closing can never fall between the
        # thread's look at it and its taking of the writes, and be missed.
        self._changed = threading.Condition()
        self._written = False
        self._closing = False
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="ieum-db-checkpoint", daemon=True)
        self._thread.start()

    def written(self) -> None:
        """A write transaction ended (committed or not): a pass is due."""
        with self._changed:
            if not self._written:  # one wake-up a pass, not one a write
                self._written = True
                self._changed.notify()

    def _due(self) -> bool:
        """Wait for writes, then let them gather unless the WAL is long; False once closing."""
        with self._changed:
            self._changed.wait_for(lambda: self._written or self._closing)
            if not self._hurry:
                self._changed.wait_for(lambda: self._closing, self._interval)
            self._written = False
            return not self._closing

    def _run(self) -> None:
        # The raw connection, outside SQLAlchemy's transactions: a checkpoint cannot run
        # inside one (SQLITE_LOCKED).
        try:
            raw = self._engine.raw_connection()
        except (sqlite3.Error, exc.DBAPIError) as error:  # the pool's raw one, or wrapped
            logger.warning("WAL checkpoints left to the writer: %s", error)
            return
        try:
            while self._due():
                self._checkpoint(raw.driver_connection)
        finally:
            raw.close()
            self._engine.dispose()

    def _checkpoint(self, conn: Any) -> None:
        try:
            _busy, wal_pages, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as error:
            self._hurry = False  # a failing pass waits for the interval, not for each write
            if not self._failing:
                logger.warning("WAL checkpoint failed, left to the writer: %s", error)
            self._failing = True
        else:
            self._hurry = wal_pages >= self._hurry_at
            if self._failing:
                logger.info("WAL checkpoints run again")
            self._failing = False

    async def close(self) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify()
        await asyncio.to_thread(self._thread.join)
