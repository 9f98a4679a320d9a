"""The directory change feed: every change to a user or a couple, made through the store or
by SQL straight into the database, is readable by position; updates that do not change who
someone is or who is in a couple (a couple's message counter) are not changes; old rows are
pruned, and a position is never handed out twice. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import Uuid, bindparam, text
from tests.conformance.store.conftest import CoupleFactory, MessageFactory
from tests.conformance.store.test_store_migrations import raw

from ieum_chat.store import Database
from ieum_chat.store.directory import ChangeKind, ChangeOp, DirectoryChange, DirectoryFeed
from ieum_chat.store.schema import utcnow

U, C = ChangeKind.USER, ChangeKind.COUPLE
INSERT, UPDATE, DELETE = ChangeOp.INSERT, ChangeOp.UPDATE, ChangeOp.DELETE


def _feed(db: Database) -> DirectoryFeed:
    return DirectoryFeed(db.db_pool)


def _url(db: Database) -> str:
    return db.db_pool.engine.url.render_as_string(hide_password=False)


async def _sql(db: Database, statement: str, **ids: uuid.UUID) -> None:
    """Another process's SQL: a connection of its own, none of the store's code."""
    query = text(statement).bindparams(*(bindparam(k, type_=Uuid()) for k in ids))
    async with raw(_url(db)) as conn:
        await conn.execute(query, ids)


def _what(changes: list[DirectoryChange]) -> list[tuple[ChangeKind, uuid.UUID, ChangeOp]]:
    return [(c.kind, c.entity_id, c.op) for c in changes]


async def test_changes_through_the_store_are_in_the_feed(
    db: Database, make_couple: CoupleFactory
) -> None:
    feed = _feed(db)
    start = await feed.directory_position()
    couple, a, b = await make_couple()
    changes = await feed.directory_changes(start)
    assert _what(changes) == [(U, a.id, INSERT), (U, b.id, INSERT), (C, couple.id, INSERT)]
    positions = [c.position for c in changes]
    assert positions == sorted(positions)
    assert positions[0] > start
    assert await feed.directory_position() == positions[-1]
    assert await feed.directory_changes(positions[-1]) == []
    assert _what(await feed.directory_changes(start, limit=1)) == [(U, a.id, INSERT)]


async def test_sql_from_another_process_is_in_the_feed(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    feed = _feed(db)
    couple, a, b = await make_couple()
    start = await feed.directory_position()
    # A message moves couples.last_seq: not a change of who is in the couple.
    await db.append_messages([new_message(couple, a)])
    await _sql(db, "UPDATE couples SET last_seq = last_seq + 1 WHERE id = :c", c=couple.id)
    assert await feed.directory_changes(start) == []

    await _sql(db, "UPDATE users SET name = 'renamed' WHERE id = :u", u=b.id)
    await _sql(db, "DELETE FROM messages WHERE couple_id = :c", c=couple.id)
    await _sql(db, "DELETE FROM couples WHERE id = :c", c=couple.id)
    await _sql(db, "DELETE FROM users WHERE id = :u", u=a.id)
    assert _what(await feed.directory_changes(start)) == [
        (U, b.id, UPDATE),
        (C, couple.id, DELETE),
        (U, a.id, DELETE),
    ]


async def test_a_couple_whose_member_changes_is_in_the_feed(
    db: Database, make_couple: CoupleFactory
) -> None:
    feed = _feed(db)
    couple, _, _ = await make_couple()
    other = await db.create_user("carol")
    start = await feed.directory_position()
    await _sql(db, "UPDATE couples SET user1_id = :u WHERE id = :c", u=other.id, c=couple.id)
    assert _what(await feed.directory_changes(start)) == [(C, couple.id, UPDATE)]


async def test_pruning_drops_old_rows_and_positions_are_not_reused(
    db: Database, make_couple: CoupleFactory
) -> None:
    feed = _feed(db)
    await make_couple()
    newest = await feed.directory_position()
    assert await feed.prune_directory_changes(utcnow() - timedelta(minutes=5)) == 0
    assert await feed.directory_changes(newest - 1) != []
    assert await feed.prune_directory_changes(utcnow() + timedelta(minutes=5)) >= 3
    assert await feed.directory_changes(0) == []
    user = await db.create_user("after the prune")
    [change] = await feed.directory_changes(0)
    assert (change.entity_id, change.position > newest) == (user.id, True)
