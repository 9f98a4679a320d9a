"""The append path when PostgreSQL goes away: unreachable, connections killed idle or in the
middle of a statement, calls cancelled. Errors are StoreUnavailable, never a driver exception
and never the password; nothing half-stored; the next call reconnects by itself.

PostgreSQL only: these are the failures of its raw connections (``store.asyncpg_pool``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from tests.support.appends import all_stored
from tests.support.postgres import lock_waiters, postgres_address
from tests.support.tcp_proxy import ProxyFactory, TcpProxy

from ieum_chat.errors import StoreError, StoreUnavailable
from ieum_chat.store import Couple, Database, Message, NewMessage, User, normalize_url
from ieum_chat.store.asyncpg_pool import AsyncpgPool
from ieum_chat.store.engines import APPEND_SETTINGS, PostgresEngine

CoupleFactory = Callable[[], Awaitable[tuple[Couple, User, User]]]
MessageFactory = Callable[..., NewMessage]

PASSWORD = "s3cret-Pa55"  # the server trusts local connections: any password will do
_KILL_OTHERS = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


# Only the PostgreSQL half of the suite's backends (not a skip on SQLite: never collected).
pytestmark = pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def pg(db: Database) -> None:
    assert db.dialect == "postgresql"


@pytest.fixture
def proxy(pg: None, tcp_proxy: ProxyFactory) -> TcpProxy:
    return tcp_proxy(*postgres_address())


@pytest.fixture
async def admin(pg: None, migrated_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own to the same database."""
    conn = await asyncpg.connect(migrated_url)
    try:
        yield conn
    finally:
        await conn.close()


async def read_back(db: Database, couple: Couple) -> list[Message]:
    # SQLAlchemy's pool has no pre-ping: after backends were killed its first statement may
    # fail once, and the pool starts over.
    try:
        return await db.get_messages(couple.id, limit=100, ascending=True)
    except StoreUnavailable:
        return await db.get_messages(couple.id, limit=100, ascending=True)


async def test_unreachable_database_is_store_unavailable(
    proxy: TcpProxy,
    migrated_url: str,
    make_couple: CoupleFactory,
    new_message: MessageFactory,
) -> None:
    couple, a, _ = await make_couple()
    url = make_url(migrated_url).set(host="127.0.0.1", port=proxy.port, password=PASSWORD)
    through_proxy = url.render_as_string(hide_password=False)
    used = await Database.connect(through_proxy)  # has appended before the cut
    fresh = await Database.connect(through_proxy)  # first appends after it
    try:
        [before] = all_stored(await used.append_messages([new_message(couple, a, "before")]))
        proxy.cut()  # open connections reset, new ones refused
        for db in (used, fresh):
            with pytest.raises(StoreUnavailable, match="append_messages") as caught:
                await db.append_messages([new_message(couple, a, "lost")])
            assert PASSWORD not in str(caught.value)
            assert isinstance(caught.value.__cause__, OSError | asyncpg.PostgresError)
            assert PASSWORD not in str(caught.value.__cause__)
        proxy.restore()
        [after] = all_stored(await used.append_messages([new_message(couple, a, "after")]))
        [other] = all_stored(await fresh.append_messages([new_message(couple, a, "other")]))
    finally:
        await used.close()
        await fresh.close()
    assert (before.message.seq, after.message.seq, other.message.seq) == (1, 2, 3)


async def test_connections_killed_between_calls(
    db: Database,
    admin: asyncpg.Connection,
    make_couple: CoupleFactory,
    new_message: MessageFactory,
) -> None:
    couple, a, b = await make_couple()
    stored = [(all_stored(await db.append_messages([new_message(couple, a, "first")])))[0].message]
    await admin.execute(_KILL_OTHERS)
    failures = 0
    for i in range(4):
        try:
            [result] = all_stored(await db.append_messages([new_message(couple, b, f"after {i}")]))
        except StoreUnavailable:
            failures += 1
            assert i == 0, "only the first call after the kill may fail"
        else:
            stored.append(result.message)
    assert failures <= 1
    assert await read_back(db, couple) == stored
    assert [m.seq for m in stored] == list(range(1, len(stored) + 1))


async def test_connection_killed_in_the_middle_of_an_append(
    db: Database,
    admin: asyncpg.Connection,
    migrated_url: str,
    make_couple: CoupleFactory,
    new_message: MessageFactory,
) -> None:
    couple, a, _ = await make_couple()
    [first] = all_stored(await db.append_messages([new_message(couple, a, "first")]))
    holder = await asyncpg.connect(migrated_url)
    try:
        locking = holder.transaction()
        await locking.start()
        await holder.execute("SELECT 1 FROM couples WHERE id = $1 FOR UPDATE", couple.id)
        blocked = asyncio.create_task(db.append_messages([new_message(couple, a, "killed")]))
        [pid] = await lock_waiters(admin, present=True)
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
        with pytest.raises(StoreUnavailable, match="append_messages"):
            await blocked
        await locking.rollback()
    finally:
        await holder.close()
    [after] = all_stored(await db.append_messages([new_message(couple, a, "after")]))
    assert after.message.seq == 2  # the killed batch stored nothing
    assert await read_back(db, couple) == [first.message, after.message]


async def test_cancelled_append_is_abandoned_not_finished(
    db: Database,
    admin: asyncpg.Connection,
    migrated_url: str,
    make_couple: CoupleFactory,
    new_message: MessageFactory,
) -> None:
    couple, a, _ = await make_couple()
    holder = await asyncpg.connect(migrated_url)
    try:
        locking = holder.transaction()
        await locking.start()
        await holder.execute("SELECT 1 FROM couples WHERE id = $1 FOR UPDATE", couple.id)
        blocked = asyncio.create_task(db.append_messages([new_message(couple, a, "cancelled")]))
        await lock_waiters(admin, present=True)
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
        # the server gives up the statement, rather than finishing it once the lock is free
        await lock_waiters(admin, present=False)
        await locking.rollback()
    finally:
        await holder.close()
    [after] = all_stored(await db.append_messages([new_message(couple, a, "after")]))
    assert after.message.seq == 1
    assert await read_back(db, couple) == [after.message]


async def test_append_after_close_is_a_store_error(
    pg: None, migrated_url: str, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, _ = await make_couple()
    db = await Database.connect(migrated_url)
    all_stored(await db.append_messages([new_message(couple, a)]))
    await db.close()
    with pytest.raises(StoreError, match="closed"):
        await db.append_messages([new_message(couple, a)])


async def test_server_refusals_are_store_errors(
    db: Database, pg: None, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, _ = await make_couple()
    with pytest.raises(StoreError, match="append_messages failed") as caught:
        await db.append_messages([new_message(couple, a, "NUL \x00 is not text")])
    assert not isinstance(caught.value, StoreUnavailable)
    # refused before it is sent: the message does not quote the whole batch
    batch = [new_message(couple, a, f"{i} " * 50) for i in range(100)]
    batch.append(new_message(couple, a, "lone surrogate \ud800"))
    with pytest.raises(StoreError, match="append_messages failed") as caught:
        await db.append_messages(batch)
    assert len(str(caught.value)) < 300
    [ok] = all_stored(await db.append_messages([new_message(couple, a)]))  # the pool carries on
    assert ok.message.seq == 1


async def test_waiting_too_long_for_a_connection_is_unavailable(
    pg: None, migrated_url: str
) -> None:
    engine = create_async_engine(normalize_url(migrated_url))
    policy = PostgresEngine()
    pool = AsyncpgPool(
        policy.raw_connect_args(engine, APPEND_SETTINGS),
        size=1,
        acquire_timeout=0.1,
        is_unavailable=policy.is_unavailable,
    )
    await engine.dispose()
    try:
        busy = asyncio.create_task(pool.fetch("sleep", "SELECT pg_sleep(0.5)"))
        await asyncio.sleep(0.05)
        with pytest.raises(StoreUnavailable, match="no connection free"):
            await pool.fetch("probe", "SELECT 1")
        await busy
        assert [tuple(row) for row in await pool.fetch("probe", "SELECT 1")] == [(1,)]
    finally:
        await pool.close()
