"""Named transactions, and the edge where driver errors become ``StoreError``.

Every database access is one transaction with a name (``append_messages``, ``mark_read``...):
a plain synchronous function ``f(conn, *args)`` over a SQLAlchemy :class:`Connection`, run on
the async engine through ``run_sync``, so a transaction reads as straight-line SQL and costs one
hop into the driver's greenlet however many statements it issues. The name is what the logs and
errors say. Driver errors become ours in ``driver_errors``, as for the raw pools.

A caller cancelled while its transaction runs stops waiting at once, however often it is
cancelled (a timeout, then a shutdown); the transaction runs to its end all the same (a write
commits) and ``close`` waits for it. The driver's connection is never given up mid-statement:
cancelled twice there, SQLAlchemy abandoned an aiosqlite connection's close halfway, leaving a
thread to post to a closed event loop, or the loop's shutdown to wait forever. (SQLite's
writes already ran this way, on their own thread: ``sqlite_writer.ThreadWriter``.)

The pool also holds the append path the engine chose (``appends``) and how it reads one
statement (``row_reads``): on PostgreSQL, each on raw connections of its own
(``asyncpg_pool``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Row
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ieum_chat.aio import stop_tasks_after
from ieum_chat.store.driver_errors import map_driver_errors
from ieum_chat.store.engines import BaseEngine
from ieum_chat.store.routing import Reads

if TYPE_CHECKING:
    from sqlalchemy.sql import Select

    from ieum_chat.store.appends import Appender
    from ieum_chat.store.row_reads import RowReader

__all__ = ["AnyRow", "DatabasePool", "SQLBaseStore"]

logger = logging.getLogger(__name__)

# A result row of any width (SQLAlchemy 2.1 types rows by their column types).
AnyRow = Row[*tuple[Any, ...]]

P = ParamSpec("P")
T = TypeVar("T")

# Transactions slower than this are logged at WARNING.
_SLOW_SECONDS = 1.0

# How long ``close`` waits for transactions whose callers were cancelled, before stopping
# them (``aio.stop_tasks_after``).
_CLOSE_WAIT_SECONDS = 10.0


class DatabasePool:
    """An async engine plus its dialect policy; runs named transactions. ``appender``: how
    this database appends messages, ``reader``: how it reads one statement (the policy's
    choices)."""

    def __init__(self, policy: BaseEngine, engine: AsyncEngine, *, pool_size: int) -> None:
        self.policy = policy
        self.engine = engine
        self.writer = policy.writer(engine)
        self.appender: Appender = policy.appender(self, pool_size=pool_size)
        self.reader: RowReader = policy.reader(self, pool_size=pool_size)
        self._running: set[asyncio.Task[Any]] = set()

    async def read_rows(
        self, desc: str, statement: Select[Any], params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """The rows of ``statement``, a read, with ``params``: indexed by position (see
        ``row_reads``)."""
        return await self.reader.rows(desc, statement, params)

    @property
    def dialect(self) -> str:
        return self.policy.name

    async def read_txn(
        self,
        desc: str,
        func: Callable[Concatenate[Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``func(conn, *args, **kwargs)``, which only reads: in a transaction, or with
        the engine's ``read_options`` (on PostgreSQL, each statement on its own)."""
        return await self._run(desc, False, func, *args, **kwargs)

    async def write_txn(
        self,
        desc: str,
        func: Callable[Concatenate[Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``func(conn, *args, **kwargs)`` in a write transaction.

        On SQLite write transactions queue on one in-process lock and begin IMMEDIATE.
        ``ValueError`` raised by ``func`` rolls back and propagates unchanged.
        """
        return await self._run(desc, True, func, *args, **kwargs)

    async def _run(
        self,
        desc: str,
        write: bool,
        func: Callable[Concatenate[Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """The transaction as a task of its own, which a cancelled caller leaves running."""
        task = asyncio.create_task(self._transaction(desc, write, func, *args, **kwargs))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(functools.partial(_report_unawaited, desc))
            raise

    async def _transaction(
        self,
        desc: str,
        write: bool,
        func: Callable[Concatenate[Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        start = time.perf_counter()
        try:
            guard = self.policy.write_guard() if write else contextlib.nullcontext()
            with map_driver_errors(desc, self.policy.is_unavailable):
                if write and self.writer is not None:
                    async with guard:
                        return await self.writer.run(func, *args, **kwargs)
                async with guard, self.engine.connect() as conn:
                    options = self.policy.write_options() if write else self.policy.read_options()
                    if options:
                        await conn.execution_options(**options)
                    async with conn.begin():
                        return await conn.run_sync(func, *args, **kwargs)
        finally:
            elapsed = time.perf_counter() - start
            if elapsed >= _SLOW_SECONDS:
                logger.warning("slow transaction %s took %.3fs", desc, elapsed)
            else:
                logger.debug("transaction %s took %.6fs", desc, elapsed)

    async def close(self) -> None:
        try:
            await stop_tasks_after(
                self._running, _CLOSE_WAIT_SECONDS, "closing the database: transactions"
            )
            await self.appender.close()
            await self.reader.close()
            if self.writer is not None:
                await self.writer.close()
        finally:
            await self.engine.dispose()


def _report_unawaited(desc: str, task: asyncio.Task[Any]) -> None:
    """How a transaction whose caller was cancelled ended, if it failed (nobody else hears)."""
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.warning("transaction %s, its caller cancelled, failed: %s", desc, error)


class SQLBaseStore:
    """Base of the per-aggregate stores; :class:`ieum_chat.store.Database` combines them.
    ``reads``: where the couple reads that may go to a replica go (default: the primary)."""

    def __init__(self, db_pool: DatabasePool, reads: Reads | None = None) -> None:
        self.db_pool = db_pool
        self.reads = reads if reads is not None else Reads(db_pool)
