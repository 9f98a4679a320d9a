"""SQLite's append (``appends.SqliteAppender``): a batch that repeats no tempId, nor sends one
stored before, runs its statements on the driver's cursor; any other goes through SQLAlchemy.
Both must leave the same rows, column for column: later statements compare the stored forms
(a Uuid's 32 hex digits, a DateTime's text), and SQLAlchemy reads them back.

SQLite only: PostgreSQL appends with a statement of its own (``test_store_append_function``).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from contextlib import closing
from dataclasses import replace
from datetime import datetime

import pytest
from tests.support.appends import all_stored

from ieum_chat.store import Couple, Database, NewMessage, User
from ieum_chat.store.records import NOTICE, SYSTEM_USER_ID, Media

CoupleFactory = Callable[[], Awaitable[tuple[Couple, User, User]]]
MessageFactory = Callable[..., NewMessage]

# Only the SQLite backend of the suite (not a skip on PostgreSQL: never collected).
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

# Every column of messages but id, seq and temp_id (which differ by design), each with the type
# SQLite holds its value as.
_COLUMNS = (
    "couple_id",
    "sender_id",
    "content",
    "type",
    "image_url",
    "is_read",
    "read_at",
    "created_at",
    "reply_to_id",
    "edited_at",
    "unsent_at",
    "reactions",
    "media_url",
    "media",
)


def _rows(url: str, ids: list[uuid.UUID]) -> list[tuple[object, ...]]:
    shown = ", ".join(f"typeof({c}), {c}" for c in _COLUMNS)
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
        return [
            conn.execute(f"SELECT {shown} FROM messages WHERE id = ?", (i.hex,)).fetchone()
            for i in ids
        ]


async def test_both_paths_store_every_column_alike(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory, migrated_url: str
) -> None:
    couple, a, _ = await make_couple()
    await db.ensure_system_user()
    [quoted] = all_stored(await db.append_messages([new_message(couple, a, temp_id="q")]))
    samples = [
        # every field set, and a time on the second (no microseconds to print)
        NewMessage(
            id=uuid.uuid4(),
            couple_id=couple.id,
            sender_id=a.id,
            type="VIDEO",
            content="caption",
            image_url="https://cdn.example/poster.jpg",
            temp_id=None,
            created_at=datetime(2024, 1, 11, 10, 10, 0),
            reply_to_id=quoted.message.id,
            media_url="https://cdn.example/v.mp4",
            media=Media(thumbnail_url="https://cdn.example/t.jpg", duration_ms=1500, size=9),
        ),
        # the fewest, and the system's notice
        NewMessage(
            id=uuid.uuid4(),
            couple_id=couple.id,
            sender_id=SYSTEM_USER_ID,
            type=NOTICE,
            content="공지",
            image_url=None,
            temp_id=None,
            created_at=datetime(2024, 1, 11, 10, 10, 0, 123456),
        ),
    ]
    returned = [quoted.message]
    for sample in samples:
        cursor = replace(sample, id=uuid.uuid4(), temp_id=f"cursor-{sample.type}")
        general = replace(sample, id=uuid.uuid4(), temp_id=f"general-{sample.type}")
        [by_cursor] = all_stored(await db.append_messages([cursor]))
        # a batch that repeats a tempId goes through SQLAlchemy
        by_general, repeat = all_stored(await db.append_messages([general, general]))
        assert (by_cursor.created, by_general.created, repeat.created) == (True, True, False)
        assert by_general.message.seq == by_cursor.message.seq + 1
        stored_by_cursor, stored_by_general = _rows(migrated_url, [cursor.id, general.id])
        assert stored_by_cursor == stored_by_general
        returned += [by_cursor.message, by_general.message]
    # and read back as they were answered
    assert await db.get_messages(couple.id, ascending=True) == returned
