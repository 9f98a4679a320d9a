"""SQLite's WAL copied back to the database file beside the writer
(``sqlite_writer.WalCheckpointer``).

A few writes are far from the writer's own checkpoint (``wal_autocheckpoint``, 10,000 pages),
so without the checkpointer they would stay in the WAL for as long as the file is open; with
it they reach the database file itself soon after. The file is read as it is on disk
(``immutable=1``: SQLite then reads neither the WAL nor its index). Closing the database stops
the checkpointer's thread (a checkpointer that cannot open the file: ``tests/unit/store``).

SQLite only: PostgreSQL checkpoints in a process of its own.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path

import pytest
from tests.support.appends import all_stored

from ieum_chat.store import Couple, Database, NewMessage, User

CoupleFactory = Callable[[], Awaitable[tuple[Couple, User, User]]]
MessageFactory = Callable[..., NewMessage]

# Only the SQLite backend of the suite (not a skip on PostgreSQL: never collected).
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

_THREAD = "ieum-db-checkpoint"
# A bound on waiting for a pass (due at once or 0.1 s after a write), not a figure under test.
_PATIENCE_SECONDS = 30.0


def _in_database_file(path: str, content: str) -> bool:
    uri = f"file:{path}?immutable=1"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as conn:
            row = conn.execute("SELECT count(*) FROM messages WHERE content = ?", (content,))
            return bool(row.fetchone()[0])
    except sqlite3.DatabaseError:
        # read while a pass was writing the file: not there yet
        return False


async def _wait_for_database_file(path: str, content: str) -> bool:
    deadline = time.monotonic() + _PATIENCE_SECONDS
    while time.monotonic() < deadline:
        if await asyncio.to_thread(_in_database_file, path, content):
            return True
        await asyncio.sleep(0.05)
    return False


def _wal_pages(path: str) -> int:
    # the WAL's size in frames (a 32-byte header, then a 24-byte header and a page a frame)
    size = Path(f"{path}-wal").stat().st_size
    return max(0, (size - 32) // (24 + 4096))


async def test_writes_reach_the_database_file_without_the_writers_checkpoint(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory, migrated_url: str
) -> None:
    path = migrated_url.removeprefix("sqlite:///")
    couple, alice, _ = await make_couple()
    content = f"copied back {time.monotonic_ns()}"
    all_stored(await db.append_messages([new_message(couple, alice, content)]))
    # the writer's own checkpoint is nowhere near: what reaches the file was copied beside it
    assert _wal_pages(path) < 10_000

    assert await _wait_for_database_file(path, content)


def _checkpointers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == _THREAD}


async def test_close_stops_the_checkpointer(migrated_url: str) -> None:
    before = _checkpointers()
    database = await Database.connect(migrated_url)
    mine = _checkpointers() - before
    assert len(mine) == 1
    a = await database.create_user("alice")
    b = await database.create_user("bob")
    await database.create_couple(a.id, b.id)

    await database.close()

    assert not any(t.is_alive() for t in mine)
