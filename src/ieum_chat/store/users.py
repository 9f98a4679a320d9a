"""Users: the people who chat. Created by the CLI, seeding or the service API; read on every
CONNECT. A deleted account keeps its row (``deleted_at``) until the purge erases it."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ieum_chat.store.pool import AnyRow, SQLBaseStore
from ieum_chat.store.records import SYSTEM_USER_ID, SYSTEM_USER_NAME, User, new_id
from ieum_chat.store.schema import users, utcnow

__all__ = [
    "USER_COLUMNS",
    "UsersStore",
    "check_user_name",
    "insert_users_txn",
    "select_users_txn",
    "user_from_row",
]

USER_COLUMNS = (users.c.id, users.c.name, users.c.profile_image, users.c.deleted_at)

NAME_MAX = 100  # users.name is VARCHAR(100)

# Ids per IN (...) list: far below every driver's bind-parameter limit.
_CHUNK = 1000


def check_user_name(name: str) -> str:
    """``name`` if it fits ``users.name``; ValueError otherwise (SQLite would not check)."""
    if not name or not name.strip():
        raise ValueError("user name must not be blank")
    if len(name) > NAME_MAX:
        raise ValueError(f"user name is {len(name)} characters long; at most {NAME_MAX} fit")
    return name


def user_from_row(row: AnyRow) -> User:
    return User(
        id=row.id, name=row.name, profile_image=row.profile_image, deleted_at=row.deleted_at
    )


def insert_users_txn(conn: Connection, new_users: Sequence[User], created_at: datetime) -> None:
    if not new_users:
        return
    conn.execute(
        insert(users),
        [
            {
                "id": user.id,
                "name": user.name,
                "profile_image": user.profile_image,
                "created_at": created_at,
            }
            for user in new_users
        ],
    )


def select_users_txn(conn: Connection, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, User]:
    wanted = list(dict.fromkeys(ids))
    found: dict[uuid.UUID, User] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        query = select(*USER_COLUMNS).where(users.c.id.in_(chunk))
        for row in conn.execute(query):
            found[row.id] = user_from_row(row)
    return found


def _insert_new_txn(conn: Connection, user: User, now: datetime) -> bool:
    """Insert ``user`` unless its id exists; whether it was inserted."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    values = {
        "id": user.id,
        "name": user.name,
        "profile_image": user.profile_image,
        "created_at": now,
    }
    statement = dialect.insert(users).values(**values).on_conflict_do_nothing()
    return bool(conn.execute(statement).rowcount)


def _upsert_user_txn(conn: Connection, user: User, now: datetime) -> bool | None:
    """True: created; False: updated; None: the id is a deleted account's (nothing changed)."""
    if _insert_new_txn(conn, user, now):
        return True
    changed = conn.execute(
        update(users)
        .where(users.c.id == user.id, users.c.deleted_at.is_(None))
        .values(name=user.name, profile_image=user.profile_image)
    ).rowcount
    return False if changed else None


class UsersStore(SQLBaseStore):
    async def create_user(self, name: str, profile_image: str | None = None) -> User:
        """Insert a user with a new random id. ValueError if the name is blank or too long."""
        user = User(id=new_id(), name=check_user_name(name), profile_image=profile_image)
        await self.db_pool.write_txn("create_user", insert_users_txn, [user], utcnow())
        return user

    async def upsert_user(self, user: User) -> bool | None:
        """Create ``user`` or update its name and profile image. True: created; False:
        updated; None: the id is a deleted account's (nothing changed). ValueError if the
        name is blank or too long, or the id is the system sender's."""
        check_user_name(user.name)
        if user.id == SYSTEM_USER_ID:
            raise ValueError("the nil UUID is the system sender's")
        return await self.db_pool.write_txn("upsert_user", _upsert_user_txn, user, utcnow())

    async def ensure_system_user(self) -> None:
        """The system sender's row (revision 0008 made it; an operator may have removed it)."""
        system = User(SYSTEM_USER_ID, SYSTEM_USER_NAME, None)
        await self.db_pool.write_txn("ensure_system_user", _insert_new_txn, system, utcnow())

    async def get_user(self, user_id: uuid.UUID) -> User | None:
        found = await self.db_pool.read_txn("get_user", select_users_txn, [user_id])
        return found.get(user_id)

    async def get_users(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, User]:
        """The users among ``ids`` that exist, by id (unknown ids are simply absent)."""
        if not ids:
            return {}
        return await self.db_pool.read_txn("get_users", select_users_txn, ids)
