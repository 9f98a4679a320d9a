"""What several workers refuse to start without, each in one line."""

from __future__ import annotations

from typing import Any

import pytest

from ieum_chat.config import Settings
from ieum_chat.workers import refusal

REDIS = "redis://127.0.0.1:6379/0"


def settings(**overrides: Any) -> Settings:
    return Settings(**{"workers": 2, "redis_url": REDIS, "port": 8080, **overrides})


def test_a_file_database_and_redis_are_enough() -> None:
    assert refusal(settings(database_url="sqlite:///./chat.db")) is None
    assert refusal(settings(database_url="postgresql://chat@db/ieum")) is None


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (
            {"redis_url": None},
            "IEUM_WORKERS=2 needs IEUM_REDIS_URL: the in-process broker cannot carry messages, "
            "presence and typing between worker processes",
        ),
        (
            {"database_url": "sqlite:///:memory:"},
            "IEUM_WORKERS=2 needs a database file or PostgreSQL, not an in-memory SQLite",
        ),
        (
            {"database_url": "sqlite://"},
            "IEUM_WORKERS=2 needs a database file or PostgreSQL, not an in-memory SQLite",
        ),
        ({"port": 0}, "IEUM_WORKERS=2 needs a fixed port: every worker binds the same one"),
    ],
)
def test_refusals(overrides: dict[str, Any], reason: str) -> None:
    assert refusal(settings(**overrides)) == reason


def test_the_worker_count_is_bounded() -> None:
    with pytest.raises(ValueError, match="workers"):
        Settings(workers=0)
    with pytest.raises(ValueError, match="workers"):
        Settings(workers=65)
