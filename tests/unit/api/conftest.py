"""The REST API in-process: the real app (lifespan, chat service, SQLite file) behind httpx's
ASGI transport, one fresh database per test."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from ieum_chat.app import create_app
from ieum_chat.auth import issue_token
from ieum_chat.chat.service import ChatService
from ieum_chat.config import Settings
from ieum_chat.gateway import Gateway
from ieum_chat.store import Couple, Database, NewMessage, User, upgrade_schema

SECRET = "ieum-chat-api-test-secret-0123456789-abcdef"
PUBLIC_URL = "http://chat.test"


@dataclass
class Api:
    client: httpx.AsyncClient
    settings: Settings
    chat: ChatService
    db: Database
    couple: Couple
    a: User
    b: User
    other: Couple
    loner: User
    gateway: Gateway
    app: FastAPI

    def token(self, user: User, ttl: int = 600) -> str:
        return issue_token(self.settings, user.id, ttl=ttl)

    def auth(self, user: User | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user or self.a)}"}

    def room(self, suffix: str = "", couple: Couple | None = None) -> str:
        return f"/chat/rooms/{(couple or self.couple).id}{suffix}"

    async def send(self, user: User | None = None, **body: Any) -> httpx.Response:
        return await self.client.post(self.room("/messages"), json=body, headers=self.auth(user))


async def seed(api: Api, n: int, *, start: int = 0) -> None:
    """``n`` messages alternating a/b (a first), stored directly (no rate limit)."""
    base = datetime(2024, 1, 11, 10, 0, 0)
    await api.db.append_messages(
        [
            NewMessage(
                id=uuid.uuid4(),
                couple_id=api.couple.id,
                sender_id=(api.a if i % 2 == 0 else api.b).id,
                type="TEXT",
                content=f"m{i + 1}",
                image_url=None,
                temp_id=None,
                created_at=base + timedelta(seconds=i),
            )
            for i in range(start, start + n)
        ]
    )


def forged_token(user: User) -> str:
    return jwt.encode(
        {"sub": str(user.id), "exp": int(time.time()) + 600},
        "not-the-server-secret-0123456789-abcdef",
        algorithm="HS256",
    )


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api-template") / "template.db"
    upgrade_schema(f"sqlite:///{path}")
    return path


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    db_path = tmp_path / "chat.db"
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{db_path}",
        "jwt_secret": SECRET,
        "upload_dir": str(tmp_path / "uploads"),
        "public_url": PUBLIC_URL,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to start the app with other settings."""
    return {}


@pytest.fixture
async def api(
    tmp_path: Path, template_db: Path, settings_overrides: dict[str, Any]
) -> AsyncIterator[Api]:
    shutil.copy(template_db, tmp_path / "chat.db")
    settings = make_settings(tmp_path, **settings_overrides)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        gateway: Gateway = app.state.runtime.require_gateway()
        chat = gateway.chat
        db = chat.db
        [(couple, a, b), (other, _, _)] = await db.seed_couples(2)
        loner = await db.create_user("loner", "https://cdn.example/loner.png")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
            yield Api(client, settings, chat, db, couple, a, b, other, loner, gateway, app)
