"""PostgreSQL's append statement and function, called as the store calls them: a batch goes
first to ``appends.APPEND_NEW`` (no tempId lookup, ``(ord, seq)`` back); one that repeats a
stored tempId is refused whole by it (a unique violation, SQLSTATE 23505: nothing stored, no
seq taken) and then answered by ``ieum_append_messages_v5``.

PostgreSQL only, plain and partitioned: SQLite appends with statements of its own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

import asyncpg  # type: ignore[import-untyped]
import pytest
from tests.support.appends import all_stored
from tests.support.postgres import lock_waiters

from ieum_chat.store import Couple, Database, NewMessage, Refused, Stored, User
from ieum_chat.store.appends import APPEND_NEW, batch_json
from ieum_chat.store.engines import APPEND_SETTINGS

CoupleFactory = Callable[[], Awaitable[tuple[Couple, User, User]]]
MessageFactory = Callable[..., NewMessage]

# Only the PostgreSQL backends of the suite (not a skip on SQLite: never collected).
pytestmark = pytest.mark.parametrize(
    "backend",
    [
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("postgresql-partitioned", marks=pytest.mark.postgres),
    ],
    indirect=True,
)


@pytest.fixture
async def admin(db: Database, migrated_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own to the suite's database, set as the store's append
    connections are."""
    assert db.dialect == "postgresql"
    conn = await asyncpg.connect(migrated_url, server_settings=dict(APPEND_SETTINGS))
    try:
        yield conn
    finally:
        await conn.close()


async def last_seq(conn: asyncpg.Connection, couple: Couple) -> int:
    return int(await conn.fetchval("SELECT last_seq FROM couples WHERE id = $1", couple.id))


async def test_new_messages_come_back_as_seqs_and_refusals_as_none(
    admin: asyncpg.Connection, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    other, c, _ = await make_couple()
    batch = [
        new_message(couple, a, "one", temp_id="t1"),
        new_message(couple, uuid.uuid4(), "not a member"),
        new_message(other, c, "elsewhere", temp_id="t1"),
        new_message(couple, b, "two"),
    ]
    rows = await admin.fetch(APPEND_NEW, batch_json(batch))
    assert sorted((row["ord"], row["seq"]) for row in rows) == [(1, 1), (2, None), (3, 1), (4, 2)]
    stored = await admin.fetch(
        "SELECT id, seq, content, temp_id FROM messages WHERE couple_id = $1 ORDER BY seq",
        couple.id,
    )
    assert [tuple(row) for row in stored] == [
        (batch[0].id, 1, "one", "t1"),
        (batch[3].id, 2, "two", None),
    ]
    assert (await last_seq(admin, couple), await last_seq(admin, other)) == (2, 1)


async def test_a_stored_temp_id_refuses_the_whole_batch(
    admin: asyncpg.Connection, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    await admin.fetch(APPEND_NEW, batch_json([new_message(couple, a, "first", temp_id="dup")]))
    batch = [new_message(couple, b, "new"), new_message(couple, a, "again", temp_id="dup")]
    with pytest.raises(asyncpg.PostgresError) as caught:
        await admin.fetch(APPEND_NEW, batch_json(batch))
    assert caught.value.sqlstate == "23505"  # the tempId's unique key (on a partition, its index)
    count = await admin.fetchval("SELECT count(*) FROM messages WHERE couple_id = $1", couple.id)
    assert (count, await last_seq(admin, couple)) == (1, 1)


async def test_a_batch_that_waited_for_a_couple_numbers_after_the_batch_it_waited_for(
    admin: asyncpg.Connection,
    migrated_url: str,
    make_couple: CoupleFactory,
    new_message: MessageFactory,
) -> None:
    # The seq comes from the counter as the lock returned it, not as the statement's snapshot
    # saw it: read from the snapshot, it would repeat the first batch's seq and break the
    # couple's (couple_id, seq) key.
    couple, a, b = await make_couple()
    first = await asyncpg.connect(migrated_url, server_settings=dict(APPEND_SETTINGS))
    try:
        async with first.transaction():
            await first.fetch(APPEND_NEW, batch_json([new_message(couple, a, "first")]))
            second = asyncio.ensure_future(
                admin.fetch(APPEND_NEW, batch_json([new_message(couple, b, "second")]))
            )
            assert await lock_waiters(first, present=True) == [admin.get_server_pid()]
            assert not second.done()
        rows = await second
    finally:
        await first.close()
    assert [(row["ord"], row["seq"]) for row in rows] == [(1, 2)]
    assert await last_seq(admin, couple) == 2


async def test_the_store_answers_a_repeat_with_the_stored_row_and_numbers_the_rest(
    db: Database,
    admin: asyncpg.Connection,
    make_couple: CoupleFactory,
    new_message: MessageFactory,
) -> None:
    couple, a, b = await make_couple()
    [first] = all_stored(await db.append_messages([new_message(couple, a, "once", temp_id="t")]))
    fresh = new_message(couple, b, "after")
    outsider = new_message(couple, uuid.uuid4(), "no")
    repeat, stored, refused = await db.append_messages(
        [new_message(couple, a, "retry", temp_id="t"), fresh, outsider]
    )
    assert repeat == Stored(first.message, created=False)
    assert stored == Stored(fresh.numbered(2), created=True)
    assert isinstance(refused, Refused)
    assert refused.new is outsider
    # what the store answered without reading the row back is what it holds
    [held] = await db.get_messages(couple.id, after_seq=1)
    assert held == stored.message
    assert await last_seq(admin, couple) == 2


async def test_fields_come_back_as_stored_from_either_function(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, _ = await make_couple()
    plain = new_message(couple, a, "plain", temp_id="p")
    # microseconds, and text the database keeps as it is
    odd = NewMessage(
        uuid.uuid4(),
        couple.id,
        a.id,
        "TEXT",
        "  tabs\tand 😀 ",
        None,
        "o",
        datetime(2024, 2, 29, 23, 59, 59, 999_999),
    )
    answered = all_stored(await db.append_messages([plain, odd]))
    again = all_stored(await db.append_messages([plain, odd]))  # through v5 this time
    held = await db.get_messages(couple.id, ascending=True)
    assert [s.message for s in answered] == held
    assert [s.message for s in again] == held
    assert [s.created for s in answered + again] == [True, True, False, False]
