"""A read replica is PostgreSQL's, of a PostgreSQL primary: anything else is refused up front."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ieum_chat.config import Settings
from ieum_chat.store import Database


def test_settings_refuse_a_replica_of_sqlite() -> None:
    with pytest.raises(ValidationError, match="needs a PostgreSQL primary"):
        Settings(
            database_url="sqlite:///./chat.db",
            database_replica_url="postgresql://u@127.0.0.1/chat",
        )


def test_settings_refuse_a_replica_that_is_not_postgresql() -> None:
    with pytest.raises(ValidationError, match="must name a PostgreSQL streaming replica"):
        Settings(
            database_url="postgresql://u@127.0.0.1/chat",
            database_replica_url="sqlite:///./replica.db",
        )


def test_settings_take_a_postgresql_replica() -> None:
    settings = Settings(
        database_url="postgres://u@127.0.0.1/chat",
        database_replica_url="postgresql://u@127.0.0.2/chat",
    )
    assert settings.database_replica_url == "postgresql://u@127.0.0.2/chat"
    assert Settings(database_url="sqlite:///./chat.db").database_replica_url is None


async def test_the_store_refuses_a_replica_of_sqlite(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a PostgreSQL primary"):
        await Database.connect(
            f"sqlite:///{tmp_path / 'chat.db'}", replica_url="postgresql://u@127.0.0.1/chat"
        )
    assert not (tmp_path / "chat.db").exists()  # refused before anything was opened
