"""A transaction whose caller is cancelled mid-statement, on every backend.

A caller stops waiting when it is cancelled, once or again (a timeout, then a shutdown); the
transaction it started runs to its end all the same (a write commits), and ``close`` waits for
it: the database closes with no driver thread, connection or task left behind to outlive the
event loop. (Cancelled twice mid-statement, SQLAlchemy gave up an aiosqlite connection's close
halfway: its thread posted to a loop already closed, or the loop's shutdown waited forever.)

Each transaction is held in its statement by the test, not by time: on SQLite a function of
the connection that waits for the test, on PostgreSQL an advisory lock the test holds.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from tests.support.postgres import lock_waiters

from ieum_chat.store import Database
from ieum_chat.store.schema import users

_LOCK_KEY = 72_010


@dataclass
class Hold:
    """Holds a transaction inside its statement until :meth:`release`."""

    dialect: str
    loop: asyncio.AbstractEventLoop
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    released: threading.Event = field(default_factory=threading.Event)
    locker: asyncpg.Connection | None = None

    def statement(self, conn: Connection) -> Any:
        """Run the held statement on ``conn`` (inside a transaction function)."""
        if self.dialect == "sqlite":
            conn.connection.dbapi_connection.create_function(  # type: ignore[union-attr]
                "ieum_test_hold", 0, self._wait
            )
            return conn.execute(text("SELECT ieum_test_hold()")).scalar()
        return conn.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_KEY}), 1")).one()[1]

    def _wait(self) -> int:  # on the driver's thread
        self.loop.call_soon_threadsafe(self.entered.set)
        self.released.wait(30)
        return 1

    async def held(self) -> None:
        """Until the statement waits."""
        if self.locker is not None:
            await lock_waiters(self.locker, present=True)
            return
        await asyncio.wait_for(self.entered.wait(), 10)

    async def release(self) -> None:
        self.released.set()
        if self.locker is not None:
            await self.locker.execute("SELECT pg_advisory_unlock_all()")


@pytest.fixture
async def hold(db: Database, migrated_url: str) -> AsyncIterator[Hold]:
    made = Hold(db.dialect, asyncio.get_running_loop())
    if db.dialect == "postgresql":
        made.locker = await asyncpg.connect(migrated_url)
        await made.locker.execute(f"SELECT pg_advisory_lock({_LOCK_KEY})")
    try:
        yield made
    finally:
        await made.release()
        if made.locker is not None:
            await made.locker.close()


def _threads() -> set[threading.Thread]:
    """The process's threads but the event loop's own executor's (it ends with the loop)."""
    return {t for t in threading.enumerate() if not t.name.startswith("asyncio_")}


async def _cancel_twice(task: asyncio.Task[Any]) -> None:
    """As a timeout and then a shutdown do; the caller stops waiting."""
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()
    async with asyncio.timeout(10):
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("kind", ["read", "write"])
async def test_cancelled_transaction_runs_to_its_end(
    db: Database, migrated_url: str, hold: Hold, kind: str
) -> None:
    before = _threads()
    database = await Database.connect(migrated_url)
    done: list[str] = []
    user_id = uuid.uuid4()

    def transaction(conn: Connection) -> None:
        assert hold.statement(conn) == 1
        if kind == "write":
            conn.execute(users.insert().values(id=user_id, name="held"))
        done.append(kind)

    run: Callable[..., Any] = (
        database.db_pool.write_txn if kind == "write" else database.db_pool.read_txn
    )
    caller = asyncio.create_task(run("held", transaction))
    await hold.held()
    await _cancel_twice(caller)
    assert done == []  # still held: the caller did not wait for it

    await hold.release()
    await asyncio.wait_for(database.close(), 30)
    assert done == [kind]  # it ran to its end before the database closed
    if kind == "write":  # and committed
        names = await db.db_pool.read_txn(
            "names", lambda conn: conn.execute(select(users.c.name)).scalars().all()
        )
        assert names == ["held"]
    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert left == []
    for thread in _threads() - before:
        thread.join(5)  # a driver's thread may still be returning from its last call
    assert [t.name for t in _threads() - before if t.is_alive()] == []
