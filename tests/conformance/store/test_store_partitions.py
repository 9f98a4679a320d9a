"""Partitioning ``messages`` by couple on PostgreSQL (``ieum-chat migrate --partitions N``): the
conversion of a database in use, its refusals, later migrations on a partitioned database, and
a history page there. The rest of the suite runs on a partitioned database too (conftest)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Uuid, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from tests.support.appends import all_stored
from tests.support.server import Cli

from ieum_chat.store import Couple, Database, NewMessage, User, normalize_url, upgrade_schema
from ieum_chat.store.messages import page_query
from ieum_chat.store.migrate import alembic_config
from ieum_chat.store.partitions import (
    Partitioning,
    PartitionRefused,
    message_partitions,
    partition_messages,
)
from ieum_chat.store.records import ChangeKind, Media, NewChange

CoupleFactory = Callable[[], Awaitable[tuple[Couple, User, User]]]
MessageFactory = Callable[..., NewMessage]

POSTGRESQL = pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
PARTITIONED = pytest.mark.parametrize(
    "backend", [pytest.param("postgresql-partitioned", marks=pytest.mark.postgres)], indirect=True
)
# After every message the factory makes.
LATER = datetime(2024, 1, 11, 11, 0)


@asynccontextmanager
async def raw(url: str) -> AsyncIterator[AsyncConnection]:
    """A bare connection, in a transaction committed at exit."""
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.begin() as conn:
            yield conn
    finally:
        await engine.dispose()


async def _partitions_of_couples(url: str) -> dict[uuid.UUID, list[str]]:
    """Each couple's id -> the tables its messages are stored in."""
    async with raw(url) as conn:
        rows = await conn.execute(
            text(
                "SELECT couple_id, array_agg(DISTINCT tableoid::regclass::text)"
                " FROM messages GROUP BY couple_id"
            )
        )
        return {row[0]: sorted(row[1]) for row in rows}


async def _snapshot(db: Database, couples: list[tuple[Couple, User, User]]) -> dict[str, Any]:
    """Everything a client can read of each couple: history pages (both directions, as each
    member sees them), resume from the start, unread counts, the stream position."""
    seen: dict[str, Any] = {}
    for couple, a, b in couples:
        key = str(couple.id)
        seen[key + " newest"] = await db.get_messages(couple.id, limit=100)
        seen[key + " older"] = await db.get_messages(couple.id, before_seq=20, limit=5)
        seen[key + " ascending"] = await db.get_messages(couple.id, after_seq=3, ascending=True)
        for member in (a, b):
            mine = f"{key} {member.name}"
            seen[mine + " page"] = await db.get_messages(couple.id, viewer_id=member.id)
            seen[mine + " resume"] = await db.read_stream(
                couple.id, member.id, after_seq=0, limit=1000
            )  # the stream and its mark
            seen[mine + " unread"] = await db.unread_count(couple.id, member.id)
        seen[key + " position"] = await db.stream_position(couple.id)
    return seen


@POSTGRESQL
async def test_conversion_in_place_keeps_every_read_and_seq_continues(
    fresh_url: str, new_message: MessageFactory
) -> None:
    upgrade_schema(fresh_url)
    db = await Database.connect(fresh_url)
    try:
        couples: list[tuple[Couple, User, User]] = []
        for i in range(8):
            a, b = await db.create_user(f"a{i}"), await db.create_user(f"b{i}")
            couples.append((await db.create_couple(a.id, b.id), a, b))
        sent: dict[uuid.UUID, list[NewMessage]] = {}
        for couple, a, b in couples:
            sent[couple.id] = [
                new_message(couple, a if n % 2 else b, f"m{n}", temp_id=f"t{n}") for n in range(30)
            ]
            all_stored(await db.append_messages(sent[couple.id]))
        # What messages become after they are sent, in the first couple.
        couple, a, b = couples[0]
        first = sent[couple.id]
        reply = NewMessage(
            uuid.uuid4(), couple.id, a.id, "TEXT", "re", None, "reply", LATER, first[0].id
        )
        all_stored(await db.append_messages([reply]))
        await db.apply_changes(
            [
                NewChange(ChangeKind.EDIT, couple.id, a.id, LATER, first[1].id, "e1", "edited"),
                NewChange(ChangeKind.REACT, couple.id, b.id, LATER, first[2].id, "r1", emoji="👍"),
                NewChange(ChangeKind.UNSEND, couple.id, a.id, LATER, first[3].id, "u1"),
                NewChange(ChangeKind.HIDE, couple.id, b.id, LATER, first[4].id, "h1"),
            ]
        )
        assert await db.mark_read(couple.id, b.id, up_to_seq=10, read_at=LATER)
        before = await _snapshot(db, couples)
    finally:
        await db.close()

    done = await partition_messages(fresh_url, 4)
    assert done == Partitioning(4, converted=True, rows=8 * 30 + 1)
    assert await message_partitions(fresh_url) == 4
    where = await _partitions_of_couples(fresh_url)
    assert set(where) == {c.id for c, _, _ in couples}
    assert all(len(tables) == 1 for tables in where.values()), where
    assert {t for tables in where.values() for t in tables} <= {f"messages_p{i}" for i in range(4)}

    db = await Database.connect(fresh_url)
    try:
        assert await _snapshot(db, couples) == before
        # A retried send is found, not stored again; a new one takes the couple's next seq.
        position = await db.stream_position(couple.id)
        [again] = all_stored(await db.append_messages([first[5]]))
        assert (again.created, again.message.seq) == (False, 6)
        [fresh] = all_stored(await db.append_messages([new_message(couple, b, temp_id="next")]))
        assert (fresh.created, fresh.message.seq) == (True, position + 1)
        # Changes and read marks still find old messages.
        await db.apply_changes(
            [NewChange(ChangeKind.EDIT, couple.id, b.id, LATER, first[6].id, "e2", "later")]
        )
        [edited] = await db.get_messages(couple.id, after_seq=6, before_seq=8)
        assert (edited.content, edited.edited_at) == ("later", LATER)
        marked = await db.mark_read(couple.id, a.id, message_ids=[fresh.message.id], read_at=LATER)
        assert [m.id for m in marked] == [fresh.message.id]
        # b's new message, then read: a's count is where it was
        assert await db.unread_count(couple.id, a.id) == before[f"{couple.id} a0 unread"]
    finally:
        await db.close()


@POSTGRESQL
async def test_same_count_again_is_nothing_and_another_count_is_refused(fresh_url: str) -> None:
    upgrade_schema(fresh_url)
    assert await message_partitions(fresh_url) is None
    assert await partition_messages(fresh_url, 3) == Partitioning(3, converted=True, rows=0)
    assert await partition_messages(fresh_url, 3) == Partitioning(3, converted=False, rows=0)
    with pytest.raises(PartitionRefused, match="already hash-partitioned into 3 partitions"):
        await partition_messages(fresh_url, 5)
    assert await message_partitions(fresh_url) == 3
    with pytest.raises(ValueError, match="between 2 and"):
        await partition_messages(fresh_url, 1)


@POSTGRESQL
async def test_a_foreign_key_to_messages_is_refused_and_nothing_changes(fresh_url: str) -> None:
    upgrade_schema(fresh_url)
    async with raw(fresh_url) as conn:
        await conn.execute(text("CREATE TABLE bookmarks (message_id uuid REFERENCES messages)"))
    with pytest.raises(PartitionRefused, match="bookmarks"):
        await partition_messages(fresh_url, 4)
    assert await message_partitions(fresh_url) is None
    async with raw(fresh_url) as conn:
        tables = (
            await conn.execute(
                text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'messages%'")
            )
        ).scalars()
        assert list(tables) == ["messages"]


async def test_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        await partition_messages(f"sqlite:///{path}", 4)
    proc = Cli.for_database(f"sqlite:///{path}").run("migrate", "--partitions", "4", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "ieum-chat: error: --partitions needs PostgreSQL: SQLite has no table partitioning"
    ]
    assert not path.exists()  # refused before migrating anything
    assert "up to date" in Cli.for_database(f"sqlite:///{path}").run("migrate").stdout
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (0,)


@POSTGRESQL
def test_migrate_command_partitions_a_fresh_database(fresh_url: str) -> None:
    cli = Cli.for_database(fresh_url)
    out = cli.run("migrate", "--partitions", "4").stdout.splitlines()
    assert out == [
        "schema is up to date",
        "messages is hash-partitioned by couple_id into 4 partitions (0 rows moved)",
    ]
    out = cli.run("migrate", "--partitions", "4").stdout.splitlines()
    assert out[-1] == "messages was already hash-partitioned into 4 partitions"
    assert cli.run("migrate").stdout.splitlines() == ["schema is up to date"]
    refused = cli.run("migrate", "--partitions", "8", check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "ieum-chat: error: messages is already hash-partitioned into 4 partitions;"
        " changing it to 8 is not supported"
    ]
    for bad in ("1", "0", "x"):
        proc = cli.run("migrate", "--partitions", bad, check=False)
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr  # usage + the error
        assert "--partitions" in proc.stderr
    assert asyncio.run(message_partitions(fresh_url)) == 4


@POSTGRESQL
async def test_later_migrations_apply_on_a_partitioned_database(fresh_url: str) -> None:
    """Partitioned at revision 0009, upgraded to 0010 (columns, a partial index, a table and an
    append function), down to 0009 and up again."""
    await asyncio.to_thread(command.upgrade, alembic_config(fresh_url), "0009")
    db = await Database.connect(fresh_url)
    try:
        a, b = await db.create_user("a"), await db.create_user("b")
        couple = await db.create_couple(a.id, b.id)
    finally:
        await db.close()
    fill = text(
        "INSERT INTO messages (id, couple_id, sender_id, type, content, seq, created_at)"
        " SELECT gen_random_uuid(), :c, :s, 'TEXT', 'old', n, TIMESTAMP '2024-01-01'"
        " FROM generate_series(1, 3) AS n"
    ).bindparams(bindparam("c", type_=Uuid()), bindparam("s", type_=Uuid()))
    async with raw(fresh_url) as conn:
        await conn.execute(fill, {"c": couple.id, "s": a.id})
        await conn.execute(
            text("UPDATE couples SET last_seq = 3 WHERE id = :c").bindparams(
                bindparam("c", type_=Uuid())
            ),
            {"c": couple.id},
        )
    assert (await partition_messages(fresh_url, 4)).rows == 3

    for _ in range(2):
        upgrade_schema(fresh_url)
        async with raw(fresh_url) as conn:
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
            per_partition = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM pg_indexes WHERE tablename LIKE 'messages_p%'"
                        " AND indexdef LIKE '%(media_url) WHERE (media_url IS NOT NULL)'"
                    )
                )
            ).scalar()
        assert (version, per_partition) == ("0011", 4)
        assert await message_partitions(fresh_url) == 4
        await asyncio.to_thread(command.downgrade, alembic_config(fresh_url), "0009")
    upgrade_schema(fresh_url)

    db = await Database.connect(fresh_url)
    try:
        media = Media(file_name="a.pdf", size=3)
        new = NewMessage(
            uuid.uuid4(),
            couple.id,
            b.id,
            "FILE",
            None,
            None,
            "f",
            LATER,
            None,
            "https://f/a",
            media,
        )
        [stored] = all_stored(await db.append_messages([new]))
        assert stored.message.seq == 4
        newest, *older = await db.get_messages(couple.id)
        assert (newest.media_url, newest.media) == ("https://f/a", media)
        assert [m.seq for m in older] == [3, 2, 1]
    finally:
        await db.close()


@PARTITIONED
async def test_history_page_reads_one_partition_through_its_index(
    db: Database, migrated_url: str, make_couple: CoupleFactory
) -> None:
    couples = [(await make_couple())[0] for _ in range(8)]
    fill = text(
        """
        INSERT INTO messages (id, couple_id, sender_id, type, content, seq, created_at)
        SELECT gen_random_uuid(), :couple, :sender, 'TEXT', 'x', n,
               TIMESTAMP '2024-01-01' + n * INTERVAL '1 second'
        FROM generate_series(1, 2000) AS n
        """
    ).bindparams(bindparam("couple", type_=Uuid()), bindparam("sender", type_=Uuid()))
    target = couples[0]
    engine = create_async_engine(normalize_url(migrated_url))
    try:
        async with engine.begin() as conn:
            for couple in couples:
                await conn.execute(fill, {"couple": couple.id, "sender": couple.user1_id})
            await conn.execute(text("ANALYZE messages"))
        async with engine.connect() as conn:
            home = await conn.scalar(
                text(
                    "SELECT tableoid::regclass::text FROM messages WHERE couple_id = :c LIMIT 1"
                ).bindparams(bindparam("c", type_=Uuid())),
                {"c": target.id},
            )
            query = page_query(target.id, before_seq=1500, limit=50).bound()
            sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
            plan = "\n".join(row[0] for row in await conn.execute(text("EXPLAIN " + sql)))
    finally:
        await engine.dispose()
    assert set(re.findall(r"messages_p\d+", plan)) == {home}, plan
    assert f"Index Scan Backward using {home}_couple_id_seq_key on {home}" in plan, plan
    assert "Seq Scan" not in plan, plan
    assert "Sort" not in plan, plan
    page = await db.get_messages(target.id, before_seq=1500)
    assert [m.seq for m in page] == list(range(1499, 1449, -1))
