"""A chat service over a real SQLite file, started per test, with one couple."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ieum_chat.auth import TokenVerifier
from ieum_chat.broker import Broker
from ieum_chat.broker.memory import MemoryBroker
from ieum_chat.chat.service import ChatService
from ieum_chat.config import Settings
from ieum_chat.store import Couple, Database, User, upgrade_schema

SECRET = "ieum-chat-unit-test-secret-0123456789-abcdef"


@dataclass
class Chat:
    service: ChatService
    db: Database
    url: str
    couple: Couple
    a: User
    b: User


ChatFactory = Callable[..., contextlib.AbstractAsyncContextManager[Chat]]


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chat-template") / "template.db"
    upgrade_schema(f"sqlite:///{path}")
    return path


@pytest.fixture
def make_chat(tmp_path: Path, template_db: Path) -> ChatFactory:
    """``async with make_chat(broker=..., **settings) as chat``: a started service."""

    @contextlib.asynccontextmanager
    async def make(broker: Broker | None = None, **overrides: Any) -> AsyncIterator[Chat]:
        shutil.copy(template_db, tmp_path / "chat.db")
        url = f"sqlite:///{tmp_path / 'chat.db'}"
        settings = Settings(database_url=url, jwt_secret=SECRET, **overrides)
        db = await Database.connect(url)
        [(couple, a, b)] = await db.seed_couples(1)
        service = ChatService(db, broker or MemoryBroker(), settings, TokenVerifier(settings))
        await service.start()
        try:
            yield Chat(service, db, url, couple, a, b)
        finally:
            await service.close()
            await db.close()

    return make
