"""Migrations: a fresh database, and the plan's database upgraded in place, end up alike."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, DateTime, Uuid, bindparam, inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from tests.support.appends import all_stored

from ieum_chat.errors import StoreError, StoreUnavailable
from ieum_chat.store import (
    Database,
    NewMessage,
    Refusal,
    Refused,
    Stored,
    normalize_url,
    upgrade_schema,
)
from ieum_chat.store.migrate import alembic_config
from ieum_chat.store.plan_schema import PLAN_INDEXES, PLAN_TABLES, plan_statements
from ieum_chat.store.schema import metadata

HEAD = "0011"


@asynccontextmanager
async def raw(url: str) -> AsyncIterator[AsyncConnection]:
    """A bare connection (none of the store's hooks), in a transaction committed at exit."""
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.begin() as conn:
            yield conn
    finally:
        await engine.dispose()


async def _version(url: str) -> str | None:
    async with raw(url) as conn:
        return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()


def _shape(conn: Connection) -> dict[str, Any]:
    """Tables, columns, indexes and unique constraints, as the database reports them."""
    inspector = inspect(conn)
    shape: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        shape[table] = (
            [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)),
            sorted(
                (u["name"], tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
        )
    return shape


def _schema_diffs(conn: Connection) -> list[Any]:
    exact = conn.dialect.name == "postgresql"
    context = MigrationContext.configure(
        conn, opts={"compare_type": exact, "compare_server_default": exact}
    )
    diffs: list[Any] = list(compare_metadata(context, metadata))
    if conn.dialect.name == "sqlite":
        # SQLite reports a non-INTEGER PRIMARY KEY column as nullable (a documented quirk).
        diffs = [d for d in diffs if not (d[0][0] == "modify_nullable" and d[0][3] == "id")]
    return diffs


async def test_fresh_database_migrates_to_head(fresh_url: str) -> None:
    upgrade_schema(fresh_url)
    assert await _version(fresh_url) == HEAD
    async with raw(fresh_url) as conn:
        assert await conn.run_sync(_schema_diffs) == []
        shape = await conn.run_sync(_shape)
    upgrade_schema(fresh_url)
    async with raw(fresh_url) as conn:
        assert await conn.run_sync(_shape) == shape
    assert await _version(fresh_url) == HEAD


T1, T2, T3 = (datetime(2024, 1, 11, 10, 10, s) for s in (1, 2, 3))


async def _create_plan_database(url: str, *, skip_index: str | None = None) -> dict[str, Any]:
    """The plan's tables made with the plan's SQL, and rows as the old backend left them."""
    ids = {name: uuid.uuid4() for name in ("a", "b", "c", "d", "c1", "c2", "m1", "m2", "m3")}
    ids["m4"], ids["m5"] = uuid.uuid4(), uuid.uuid4()
    async with raw(url) as conn:
        dialect = conn.dialect.name
        for statement in plan_statements(dialect):
            if skip_index is None or skip_index not in statement:
                await conn.execute(text(statement))
        uid = [bindparam(n, type_=Uuid()) for n in ("id", "u1", "u2", "c", "s")]
        at = bindparam("at", type_=DateTime())
        insert_user = text("INSERT INTO users (id, name) VALUES (:id, :name)").bindparams(uid[0])
        for user in ("a", "b", "c", "d"):
            await conn.execute(insert_user, {"id": ids[user], "name": f"user {user}"})
        insert_couple = text(
            "INSERT INTO couples (id, user1_id, user2_id) VALUES (:id, :u1, :u2)"
        ).bindparams(*uid[:3])
        await conn.execute(insert_couple, {"id": ids["c1"], "u1": ids["a"], "u2": ids["b"]})
        await conn.execute(insert_couple, {"id": ids["c2"], "u1": ids["c"], "u2": ids["d"]})
        insert_message = text(
            "INSERT INTO messages (id, couple_id, sender_id, content, type, created_at)"
            " VALUES (:id, :c, :s, :content, 'TEXT', :at)"
        ).bindparams(uid[0], uid[3], uid[4], at)
        # inserted out of order: created_at, not insertion, decides seq
        for message, sender, when in (("m2", "b", T2), ("m3", "a", T3), ("m1", "a", T1)):
            row = {"id": ids[message], "c": ids["c1"], "s": ids[sender], "at": when}
            await conn.execute(insert_message, {**row, "content": message})
        await conn.execute(
            text(
                "INSERT INTO messages (id, couple_id, sender_id, content, type, is_read, "
                "created_at) VALUES (:id, :c, :s, 'null read', 'TEXT', NULL, :at)"
            ).bindparams(uid[0], uid[3], uid[4], at),
            {"id": ids["m4"], "c": ids["c2"], "s": ids["c"], "at": T1},
        )
        await conn.execute(
            text("UPDATE messages SET is_read = TRUE, read_at = :at WHERE id = :id").bindparams(
                uid[0], at
            ),
            {"id": ids["m2"], "at": T3},
        )
    return ids


async def test_plan_database_is_upgraded_in_place(fresh_url: str) -> None:
    ids = await _create_plan_database(fresh_url)
    upgrade_schema(fresh_url)
    assert await _version(fresh_url) == HEAD

    db = await Database.connect(fresh_url)
    try:
        history = await db.get_messages(ids["c1"], ascending=True)
        assert [(m.seq, m.id, m.content) for m in history] == [
            (1, ids["m1"], "m1"),
            (2, ids["m2"], "m2"),
            (3, ids["m3"], "m3"),
        ]
        assert [m.created_at for m in history] == [T1, T2, T3]
        assert [(m.is_read, m.read_at) for m in history] == [
            (False, None),
            (True, T3),
            (False, None),
        ]
        assert all(m.temp_id is None for m in history)
        assert await db.unread_count(ids["c1"], ids["b"]) == 2
        [null_read] = await db.get_messages(ids["c2"])
        assert (null_read.seq, null_read.is_read) == (1, False)
        assert await db.get_couple(ids["c1"]) is not None
        assert await db.couple_of(ids["d"]) is not None

        async with raw(fresh_url) as conn:
            rows = (await conn.execute(text("SELECT id, last_seq FROM couples"))).all()
        counters = {row.id: row.last_seq for row in rows}
        assert sorted(counters.values()) == [1, 3]

        new = NewMessage(uuid.uuid4(), ids["c1"], ids["b"], "TEXT", "after", None, "t", T3)
        [stored] = all_stored(await db.append_messages([new]))
        assert stored.message.seq == 4
    finally:
        await db.close()

    # a second run changes nothing
    async with raw(fresh_url) as conn:
        shape = await conn.run_sync(_shape)
    upgrade_schema(fresh_url)
    async with raw(fresh_url) as conn:
        assert await conn.run_sync(_shape) == shape
        assert await conn.run_sync(_schema_diffs) == []
        count = (await conn.execute(text("SELECT COUNT(*) FROM messages"))).scalar()
    assert count == 5


async def test_upgraded_plan_database_matches_a_fresh_one(
    fresh_url: str, other_fresh_url: str
) -> None:
    await _create_plan_database(fresh_url)
    upgrade_schema(fresh_url)
    other = other_fresh_url
    upgrade_schema(other)
    async with raw(fresh_url) as conn:
        upgraded = await conn.run_sync(_shape)
    async with raw(other) as conn:
        fresh = await conn.run_sync(_shape)
    assert upgraded == fresh


async def test_missing_plan_index_is_created(fresh_url: str) -> None:
    await _create_plan_database(fresh_url, skip_index="idx_messages_unread")
    upgrade_schema(fresh_url)
    async with raw(fresh_url) as conn:
        names = await conn.run_sync(
            lambda c: {i["name"] for i in inspect(c).get_indexes("messages")}
        )
    assert set(PLAN_INDEXES["postgresql"]) <= names


def test_plan_schema_has_every_plan_table() -> None:
    for dialect in ("sqlite", "postgresql"):
        assert list(PLAN_TABLES[dialect]) == ["users", "couples", "messages"]
        assert len(plan_statements(dialect)) == 5
    assert "created_at TIMESTAMP DEFAULT NOW()" in PLAN_TABLES["postgresql"]["messages"]
    with pytest.raises(ValueError, match="dialect"):
        plan_statements("mysql")


def test_upgrade_schema_refuses_bad_urls() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        upgrade_schema("mysql://u@h/db")


def test_upgrade_schema_unreachable_postgres() -> None:
    with pytest.raises(StoreUnavailable):
        upgrade_schema("postgresql://root@127.0.0.1:1/nowhere")


_TABLES_SINCE_0006 = {
    "directory_changes",
    "message_events",
    "message_hides",
    "maintenance_runs",
    "devices",
    "delivery_consumers",
    "delivery_cursors",
    "deliveries",
    "uploads",
}
_COLUMNS_SINCE_0007 = {
    "messages": {"reply_to_id", "edited_at", "unsent_at", "reactions", "media_url", "media"},
    "users": {"deleted_at", "push_preview"},
    "couples": {"dissolved_at"},
}
_INDEXES_SINCE_0010 = {"ix_messages_media_url"}


async def _append_functions(url: str) -> int:
    async with raw(url) as conn:
        if conn.dialect.name != "postgresql":
            return 0
        query = text(
            "SELECT count(*) FROM pg_proc"
            " WHERE proname IN ('ieum_append_messages', 'ieum_append_new_messages')"
        )
        return int((await conn.execute(query)).scalar_one())


async def test_append_function_downgrades_and_upgrades(fresh_url: str) -> None:
    """Revisions 0004 and 0011 only add PostgreSQL's append functions, the first and the one
    without a lookup (nothing on SQLite): down and up again, the tables are untouched; at 0003
    PostgreSQL's appends are a StoreError that names a column the append statement needs and
    that schema lacks, and at head they work again."""
    upgrade_schema(fresh_url)
    async with raw(fresh_url) as conn:
        dialect = conn.dialect.name
        at_head = await conn.run_sync(_shape)
    assert await _append_functions(fresh_url) == (2 if dialect == "postgresql" else 0)
    db = await Database.connect(fresh_url)  # the users and couple of this code, at head
    try:
        a, b = await db.create_user("a"), await db.create_user("b")
        couple = await db.create_couple(a.id, b.id)
    finally:
        await db.close()
    new = NewMessage(uuid.uuid4(), couple.id, a.id, "TEXT", "hi", None, "t", T1)

    # env.py runs its own event loop: off this one, as upgrade_schema does
    await asyncio.to_thread(command.downgrade, alembic_config(fresh_url), "0003")
    assert await _version(fresh_url) == "0003"
    assert await _append_functions(fresh_url) == 0
    # what revisions 0006 to 0010 added is gone, the rest as it was
    below = {k: v for k, v in at_head.items() if k not in _TABLES_SINCE_0006}
    for table, added in _COLUMNS_SINCE_0007.items():
        columns, indexes, uniques = below[table]
        kept = [i for i in indexes if i[0] not in _INDEXES_SINCE_0010]
        below[table] = ([c for c in columns if c[0] not in added], kept, uniques)
    async with raw(fresh_url) as conn:
        assert await conn.run_sync(_shape) == below
    db = await Database.connect(fresh_url)
    try:
        if dialect == "postgresql":
            with pytest.raises(StoreError, match=r"column c\.dissolved_at does not exist"):
                await db.append_messages([new])
    finally:
        await db.close()

    upgrade_schema(fresh_url)
    assert await _version(fresh_url) == HEAD
    assert await _append_functions(fresh_url) == (2 if dialect == "postgresql" else 0)
    db = await Database.connect(fresh_url)
    try:
        stored, repeat = all_stored(await db.append_messages([new, new]))
        assert (stored.created, stored.message.seq) == (True, 1)
        assert repeat == Stored(stored.message, created=False)
    finally:
        await db.close()


async def _append_function_results(url: str) -> dict[str, str] | None:
    """Each append function's result type, by name (None on SQLite, which has none)."""
    async with raw(url) as conn:
        if conn.dialect.name != "postgresql":
            return None
        query = text(
            "SELECT proname, pg_get_function_result(oid) FROM pg_proc"
            " WHERE proname LIKE 'ieum_append_messages%'"
        )
        return {row[0]: row[1] for row in await conn.execute(query)}


async def test_append_function_v2_returns_whole_rows(fresh_url: str) -> None:
    """Revision 0005 adds ``ieum_append_messages_v2`` beside 0004's function (which servers
    not yet upgraded keep calling): one whole row per message, Message's fields in order, then
    ord and outcome; revision 0007 adds v3, the same with the columns it added, and 0008 v4,
    whose rows are v3's, and 0010 v5, with the media columns. Down to 0004 only the old one
    is left; up again all five, and a
    batch with a message to no couple stores the rest."""
    upgrade_schema(fresh_url)
    functions = await _append_function_results(fresh_url)
    if functions is not None:
        assert set(functions) == {
            "ieum_append_messages",
            "ieum_append_messages_v2",
            "ieum_append_messages_v3",
            "ieum_append_messages_v4",
            "ieum_append_messages_v5",
        }
        v2 = functions["ieum_append_messages_v2"]
        assert v2.startswith("TABLE(id uuid, couple_id uuid, sender_id uuid, seq bigint")
        assert v2.endswith("temp_id text, ord bigint, outcome text)")
        v3 = functions["ieum_append_messages_v3"]
        assert v3.startswith("TABLE(id uuid, couple_id uuid, sender_id uuid, seq bigint")
        assert v3.endswith(
            "temp_id text, reply_to_id uuid, edited_at timestamp without time zone, "
            "unsent_at timestamp without time zone, reactions text, ord bigint, outcome text)"
        )
        assert functions["ieum_append_messages_v4"] == v3
        assert functions["ieum_append_messages_v5"] == v3.replace(
            "reactions text,", "reactions text, media_url text, media text,"
        )
        assert functions["ieum_append_messages"].startswith("TABLE(ord bigint, seq bigint")

    await asyncio.to_thread(command.downgrade, alembic_config(fresh_url), "0004")
    assert await _version(fresh_url) == "0004"
    if functions is not None:
        assert await _append_function_results(fresh_url) == {
            "ieum_append_messages": functions["ieum_append_messages"]
        }

    upgrade_schema(fresh_url)
    assert await _append_function_results(fresh_url) == functions
    db = await Database.connect(fresh_url)
    try:
        a, b = await db.create_user("a"), await db.create_user("b")
        couple = await db.create_couple(a.id, b.id)
        kept = NewMessage(uuid.uuid4(), couple.id, a.id, "TEXT", "kept", None, "t", T1)
        lost = NewMessage(uuid.uuid4(), uuid.uuid4(), a.id, "TEXT", "lost", None, "t", T1)
        stored, refused = await db.append_messages([kept, lost])
        assert isinstance(stored, Stored)
        assert stored.message.seq == 1
        assert isinstance(refused, Refused)
        assert (refused.new, refused.reason) == (lost, Refusal.NOT_A_MEMBER)
    finally:
        await db.close()
