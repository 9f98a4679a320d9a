"""URLs and connecting: which drivers, and which errors when the database is not there."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
import pytest
from tests.support.appends import all_stored
from tests.support.postgres import throwaway_database

from ieum_chat.errors import StoreError, StoreUnavailable
from ieum_chat.store import Database, NewMessage, normalize_url, upgrade_schema


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
        ("sqlite:////abs/path/x.db", "sqlite+aiosqlite:////abs/path/x.db"),
        ("sqlite+aiosqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u:p%40ss@h:5433/db", "postgresql+asyncpg://u:p%40ss@h:5433/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql://u@h/db?ssl=require", "postgresql+asyncpg://u@h/db?ssl=require"),
    ],
)
def test_normalize_url(url: str, expected: str) -> None:
    assert normalize_url(url) == expected
    assert normalize_url(expected) == expected


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u@h/db",
        "postgresql+psycopg2://u:secret@h/db",
        "redis://localhost:6379/0",
        "just-a-path.db",
        "",
    ],
)
def test_normalize_url_refuses(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite:///") as caught:
        normalize_url(url)
    assert "secret" not in str(caught.value)


async def test_connect_to_nothing_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable):
        await Database.connect(f"sqlite:///{tmp_path}/missing-dir/x.db")
    with pytest.raises(StoreUnavailable):
        await Database.connect("postgresql://root@127.0.0.1:1/nowhere")


async def test_connect_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        await Database.connect("mysql://u@h/db")
    with pytest.raises(ValueError, match="pool_size"):
        await Database.connect("sqlite:///x.db", pool_size=0)


async def test_unmigrated_database_is_a_store_error(tmp_path: Path) -> None:
    db = await Database.connect(f"sqlite:///{tmp_path}/empty.db")
    try:
        with pytest.raises(StoreError, match="get_users failed") as caught:
            await db.get_users({uuid.uuid4()})
        assert not isinstance(caught.value, StoreUnavailable)
        assert caught.value.__cause__ is not None
    finally:
        await db.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway database on the machine's PostgreSQL, reached over TCP."""
    with throwaway_database() as url:
        yield url


@pytest.mark.postgres
async def test_postgresql_on_this_machine_over_its_unix_socket(postgres_url: str) -> None:
    """``?host=<directory>`` reaches the server over its Unix socket: the migrations, the
    pool and the append path's own connections all take it."""
    admin = await asyncpg.connect(postgres_url)
    try:
        directories = await admin.fetchval("SHOW unix_socket_directories")
        parts = urlsplit(postgres_url)
        name = parts.path.lstrip("/")
        directory = directories.split(",")[0].strip()
        url = f"postgresql://{parts.username}@/{name}?host={directory}"
        upgrade_schema(url)
        db = await Database.connect(url)
        try:
            a = await db.create_user("alice")
            b = await db.create_user("bob")
            couple = await db.create_couple(a.id, b.id)
            new = NewMessage(
                id=uuid.uuid4(),
                couple_id=couple.id,
                sender_id=a.id,
                type="TEXT",
                content="hello",
                image_url=None,
                temp_id="t-1",
                created_at=datetime(2024, 1, 11, 10, 10),
            )
            [stored] = all_stored(await db.append_messages([new]))
            assert await db.get_messages(couple.id) == [stored.message]
            clients = await admin.fetch(
                "SELECT client_addr FROM pg_stat_activity"
                " WHERE datname = $1 AND backend_type = 'client backend'"
                " AND pid <> pg_backend_pid()",
                name,
            )
        finally:
            await db.close()
    finally:
        await admin.close()
    # The pool's connection and the append path's: none over TCP (a socket's has no address).
    assert len(clients) >= 2
    assert [row["client_addr"] for row in clients] == [None] * len(clients)
