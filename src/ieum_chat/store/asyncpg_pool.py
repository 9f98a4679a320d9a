"""Raw asyncpg connections for the append path and the hottest reads, beside SQLAlchemy's pool
(PostgreSQL only; each has a pool of this kind of its own).

At thousands of messages a second the append path is most of the server's CPU, and most of
that was SQLAlchemy's statement building, its pool and transaction wrapper and the greenlet
hop of ``run_sync``, not the database. So on PostgreSQL a batch is one statement
(``appends.APPEND_NEW``, or a server-side function for a batch that repeats a tempId) on a
connection of this pool: one prepared statement, one round trip; and so is a history page or
a member's room (``row_reads``). Each call is a statement on its own, its own transaction: a
connection goes back to the pool with no transaction open.

Connections are opened on first use, at most ``size`` at once. One that failed in any way
other than a clean error reply from the server (lost, timed out, cancelled mid-statement) is
closed and dropped, never reused; one the server closed is dropped when next taken. So after a
database restart or a killed backend the next call opens a fresh connection by itself. A
connection dropped mid-statement is closed in the background, once the cancel request asyncpg
sends on a timeout or a cancelled call has reached the server: the server then abandons the
statement (say, one waiting on a couple's lock) instead of finishing it for nobody.

Errors, as in ``pool`` and through the same ``driver_errors.map_driver_errors``:
:class:`StoreUnavailable` when the database cannot be reached (refused, lost, timed out, no
connection free in time), :class:`StoreError` for any other failure. No asyncpg exception
gets out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from ieum_chat.errors import StoreError, StoreUnavailable
from ieum_chat.store.driver_errors import DRIVER_ERRORS, map_driver_errors

__all__ = ["AsyncpgPool"]

logger = logging.getLogger(__name__)

# Calls slower than this are logged at WARNING (as named transactions are, see ``pool``).
_SLOW_SECONDS = 1.0

# Closing a connection politely (and delivering a pending cancel request first), but not
# waiting long on a dead one.
_CLOSE_TIMEOUT = 2.0


class AsyncpgPool:
    """At most ``size`` raw connections, made with ``asyncpg.connect(**connect_kwargs)``.

    ``is_unavailable`` says which driver errors mean the database cannot be reached (the
    dialect policy's, so both pools agree). ``acquire_timeout``: how long a call waits for a
    free connection before it gives up with StoreUnavailable.
    """

    def __init__(
        self,
        connect_kwargs: Mapping[str, Any],
        *,
        size: int,
        acquire_timeout: float,
        is_unavailable: Callable[[BaseException], bool],
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self.size = size
        self._connect_kwargs = dict(connect_kwargs)
        self._slots = asyncio.Semaphore(size)
        self._idle: list[Any] = []  # asyncpg.Connection, most recently used last
        self._acquire_timeout = acquire_timeout
        self._is_unavailable = is_unavailable
        self._closed = False
        self._closing: set[asyncio.Task[None]] = set()  # see _discard

    async def fetch(self, desc: str, query: str, *args: object) -> list[Any]:
        """Run ``query`` (one statement, its own transaction) and return its rows (asyncpg
        ``Record``s). ``desc`` names the call in logs and errors."""
        if self._closed:
            raise StoreError(f"{desc} failed: the database is closed")
        start = time.perf_counter()
        try:
            await self._take_slot(desc)
            conn: Any = None

            def unreachable(error: BaseException) -> bool:
                # A connection that died under the call is "unreachable" whatever the driver
                # made of it (it may report a confused state instead: another operation...).
                return self._is_unavailable(error) or (conn is not None and conn.is_closed())

            try:
                with map_driver_errors(desc, unreachable):
                    conn = await self._connect()
                    return await self._run(conn, query, args)
            finally:
                self._slots.release()
        finally:
            elapsed = time.perf_counter() - start
            if elapsed >= _SLOW_SECONDS:
                logger.warning("slow call %s took %.3fs", desc, elapsed)
            else:
                logger.debug("call %s took %.6fs", desc, elapsed)

    async def close(self) -> None:
        """Close the idle connections; those in use are closed as their calls finish. Later
        calls fail with StoreError."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_close_quietly(conn) for conn in idle), *self._closing)

    async def _take_slot(self, desc: str) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # free: returns without suspending
            return
        try:
            async with asyncio.timeout(self._acquire_timeout):
                await self._slots.acquire()
        except TimeoutError as error:
            raise StoreUnavailable(
                f"{desc}: database unreachable: no connection free within "
                f"{self._acquire_timeout:g}s"
            ) from error

    async def _connect(self) -> Any:
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
        return await asyncpg.connect(**self._connect_kwargs)

    async def _run(self, conn: Any, query: str, args: tuple[object, ...]) -> list[Any]:
        try:
            rows: list[Any] = await conn.fetch(query, *args)
        except asyncpg.PostgresError as error:
            # The server answered with an error and rolled the statement back: the connection
            # is as good as before, unless the error was about the connection itself
            # (terminated by an administrator, server shutting down...).
            if self._is_unavailable(error) or conn.is_closed():
                self._discard(conn)
            else:
                await self._give_back(conn)
            raise
        except BaseException:
            # Lost, timed out or cancelled mid-statement, or refused by the driver: whatever
            # state the connection is in, it is not one to reuse (and a cancelled statement
            # may still be running on the server: see _discard).
            self._discard(conn)
            raise
        await self._give_back(conn)
        return rows

    def _discard(self, conn: Any) -> None:
        task = asyncio.get_running_loop().create_task(_close_quietly(conn))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _give_back(self, conn: Any) -> None:
        if self._closed:
            await _close_quietly(conn)
        elif not conn.is_closed():
            self._idle.append(conn)


async def _close_quietly(conn: Any) -> None:
    # close() first waits for a pending cancel request to be delivered (see _discard).
    try:
        await conn.close(timeout=_CLOSE_TIMEOUT)
    except DRIVER_ERRORS:
        conn.terminate()
