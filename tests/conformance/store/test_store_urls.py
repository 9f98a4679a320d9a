"""URLs and connecting: which drivers, and which errors when the database is not there."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from ieum_chat.errors import StoreError, StoreUnavailable
from ieum_chat.store import Database, normalize_url


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
