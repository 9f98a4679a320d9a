"""One store suite, every backend: each test taking ``db`` runs on SQLite, on PostgreSQL and on
PostgreSQL with ``messages`` hash-partitioned by couple (``postgresql-partitioned``, 4 partitions:
``ieum-chat migrate --partitions 4``).

SQLite: a file in a temporary directory. PostgreSQL: a throwaway database
``ieum_test_<random>`` on the local server (tests/support/postgres.py: ``IEUM_TEST_PG_URL``,
default ``postgresql://root@127.0.0.1:5432/test``), created for the session and dropped
afterwards. If that server cannot be reached the PostgreSQL half is skipped, unless ``CI`` is
set: then it fails, so a CI run can never pass with half the suite silently missing.

Each backend is migrated once; every test then starts from empty tables. ``fresh_url`` is an
unmigrated database whatever the backend, so on ``postgresql-partitioned`` the tests of the
migrations themselves see plain PostgreSQL; ``test_store_partitions`` runs migrations on a
partitioned database.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from tests.support.postgres import create_database, drop_database, require_postgres

from ieum_chat.store import Couple, Database, NewMessage, User, upgrade_schema
from ieum_chat.store.partitions import partition_messages

# The partitioned backend's count: more than one, so that couples land in different tables.
PARTITIONS = 4

_TABLES = (  # children first
    "deliveries",
    "delivery_cursors",
    "delivery_consumers",
    "devices",
    "message_events",
    "message_hides",
    "messages",
    "uploads",
    "couples",
    "users",
    "maintenance_runs",
)


@dataclass
class Backend:
    """One kind of database, able to make empty databases of its kind."""

    name: str
    workdir: Path
    created: list[str]

    @property
    def dialect(self) -> str:
        return "sqlite" if self.name == "sqlite" else "postgresql"

    def new_url(self) -> str:
        """The URL of a brand-new, empty (unmigrated) database."""
        if self.name == "sqlite":
            return f"sqlite:///{self.workdir / f'ieum-{secrets.token_hex(6)}.db'}"
        url = create_database()
        self.created.append(url)
        return url

    def drop_all(self) -> None:
        while self.created:
            drop_database(self.created.pop())


@pytest.fixture(
    scope="session",
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("postgresql-partitioned", marks=pytest.mark.postgres),
    ],
)
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    if request.param != "sqlite":
        require_postgres()
    made = Backend(request.param, tmp_path_factory.mktemp(f"store-{request.param}"), [])
    try:
        yield made
    finally:
        made.drop_all()


@pytest.fixture(scope="session")
def migrated_url(backend: Backend) -> str:
    """A database of ``backend`` migrated to head, shared by the session's tests."""
    url = backend.new_url()
    upgrade_schema(url)
    if backend.name == "postgresql-partitioned":
        asyncio.run(partition_messages(url, PARTITIONS))
    return url


async def _wipe(url: str, dialect: str) -> None:
    if dialect == "sqlite":
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            for table in _TABLES:
                conn.execute(f"DELETE FROM {table}")
        return
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"TRUNCATE {', '.join(_TABLES)}")
    finally:
        await conn.close()


@pytest.fixture
async def db(backend: Backend, migrated_url: str) -> AsyncIterator[Database]:
    """A connected :class:`Database` over empty, migrated tables."""
    await _wipe(migrated_url, backend.dialect)
    database = await Database.connect(migrated_url)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def fresh_url(backend: Backend) -> str:
    """A brand-new, empty, unmigrated database of the current backend."""
    return backend.new_url()


@pytest.fixture
def other_fresh_url(backend: Backend) -> str:
    """A second one, for comparisons."""
    return backend.new_url()


CoupleFactory = Callable[[], Awaitable[tuple[Couple, User, User]]]


@pytest.fixture
def make_couple(db: Database) -> CoupleFactory:
    async def make() -> tuple[Couple, User, User]:
        a = await db.create_user("alice")
        b = await db.create_user("bob")
        return await db.create_couple(a.id, b.id), a, b

    return make


MessageFactory = Callable[..., NewMessage]
_BASE_TIME = datetime(2024, 1, 11, 10, 10, 0)


@pytest.fixture
def new_message() -> MessageFactory:
    counter = iter(range(1_000_000))

    def make(
        couple: Couple,
        sender: User | uuid.UUID,
        content: str = "안녕하세요!",
        *,
        temp_id: str | None = None,
        type: str = "TEXT",
    ) -> NewMessage:
        sender_id = sender.id if isinstance(sender, User) else sender
        return NewMessage(
            id=uuid.uuid4(),
            couple_id=couple.id,
            sender_id=sender_id,
            type=type,
            content=content,
            image_url=None,
            temp_id=temp_id,
            created_at=_BASE_TIME + timedelta(seconds=next(counter)),
        )

    return make
