"""Raw asyncpg connections for the append path, beside SQLAlchemy's pool (PostgreSQL only).

At thousands of messages a second the append path is most of the server's CPU, and most of
that was SQLAlchemy's statement building, its pool and transaction wrapper and the greenlet
hop of ``run_sync``, not the database. So on PostgreSQL a batch is one call of a server-side
function (migration 0004) on a connection of this pool: one prepared statement, one round
trip. Each call is a statement on its own, its own transaction: a connection goes back to
the pool with no transaction open.

Connections are opened on first use, at most ``size`` at once. One that failed in any way
other than a clean error reply from the server (lost, timed out, cancelled mid-statement) is
closed and dropped, never reused; one the server closed is dropped when next taken. So after a
database restart or a killed backend the next call opens a fresh connection by itself. A
connection dropped mid-statement is closed in the background, once the cancel request asyncpg
sends on a timeout or a cancelled call has reached the server: the server then abandons the
statement (say, one waiting on a couple's lock) instead of finishing it for nobody.

Errors, as in ``pool``: :class:`StoreUnavailable` when the database cannot be reached (refused,
lost, timed out, no connection free in time), :class:`StoreError` for any other failure, and
``ValueError`` for an error our own functions raise with SQLSTATE class ``IE`` (the caller's
arguments were wrong; the server's message says how). No asyncpg exception gets out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from ieum_chat.errors import StoreError, StoreUnavailable

__all__ = ["REFUSED_SQLSTATE_CLASS", "AsyncpgPool"]

logger = logging.getLogger(__name__)

# SQLSTATE class of the errors our functions raise for arguments they refuse. Classes I-Z are
# left to implementations by the SQL standard; PostgreSQL's own there are P0 and XX.
REFUSED_SQLSTATE_CLASS = "IE"

# Calls slower than this are logged at WARNING (as named transactions are, see ``pool``).
_SLOW_SECONDS = 1.0

# Failures that are not an error reply from the server.
_DRIVER_FAILURES = (asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)

# Characters of a driver's message that go into ours.
_REASON_MAX = 200

# Closing a connection politely (and delivering a pending cancel request first), but not
# waiting long on a dead one.
_CLOSE_TIMEOUT = 2.0


def _unreachable(desc: str, error: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"{desc}: database unreachable: {_reason(error)}")


def _failed(desc: str, error: BaseException) -> StoreError:
    return StoreError(f"{desc} failed: {_reason(error)}")


def _reason(error: BaseException) -> str:
    # Cut short: asyncpg quotes a whole argument it could not encode, here a batch's contents.
    lines = str(error).splitlines()
    first = lines[0] if lines else ""
    if len(first) > _REASON_MAX:
        first = first[: _REASON_MAX - 1] + "…"
    return f"{type(error).__name__}: {first}"


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
            try:
                conn = await self._connect(desc)
                return await self._run(desc, conn, query, args)
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

    async def _connect(self, desc: str) -> Any:
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
        try:
            return await asyncpg.connect(**self._connect_kwargs)
        except (OSError, TimeoutError) as error:
            raise _unreachable(desc, error) from error
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            # e.g. 57P03 (starting up), 3D000 (no such database): unreachable; 28P01 (wrong
            # password) or a bad SSL setting: a StoreError, retrying will not help
            if self._is_unavailable(error):
                raise _unreachable(desc, error) from error
            raise _failed(desc, error) from error

    async def _run(self, desc: str, conn: Any, query: str, args: tuple[object, ...]) -> list[Any]:
        try:
            rows: list[Any] = await conn.fetch(query, *args)
        except asyncpg.PostgresError as error:
            # The server answered with an error and rolled the statement back: the connection
            # is as good as before, unless the error was about the connection itself
            # (terminated by an administrator, server shutting down...).
            if self._is_unavailable(error) or conn.is_closed():
                self._discard(conn)
                raise _unreachable(desc, error) from error
            await self._give_back(conn)
            if (error.sqlstate or "").startswith(REFUSED_SQLSTATE_CLASS):
                raise ValueError(error.message) from error
            raise _failed(desc, error) from error
        except _DRIVER_FAILURES as error:
            # Lost or timed out mid-statement, or refused by the driver: whatever state the
            # connection is in, it is not one to reuse.
            lost = conn.is_closed() or isinstance(error, OSError | TimeoutError)
            self._discard(conn)
            if lost or self._is_unavailable(error):
                raise _unreachable(desc, error) from error
            raise _failed(desc, error) from error
        except BaseException:
            # Cancelled mid-statement: the statement may still be running on the server.
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
    except (asyncpg.PostgresError, *_DRIVER_FAILURES):
        conn.terminate()
