"""Users: the people who chat. Created by the CLI or seeding; read on every CONNECT."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from ieum_chat.store.pool import AnyRow, SQLBaseStore
from ieum_chat.store.records import User
from ieum_chat.store.schema import users, utcnow

__all__ = ["UsersStore", "check_user_name", "insert_users_txn", "user_from_row"]

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
    return User(id=row.id, name=row.name, profile_image=row.profile_image)


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


def _select_users_txn(conn: Connection, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, User]:
    wanted = list(dict.fromkeys(ids))
    found: dict[uuid.UUID, User] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        query = select(users.c.id, users.c.name, users.c.profile_image).where(users.c.id.in_(chunk))
        for row in conn.execute(query):
            found[row.id] = user_from_row(row)
    return found


class UsersStore(SQLBaseStore):
    async def create_user(self, name: str, profile_image: str | None = None) -> User:
        """Insert a user with a new random id. ValueError if the name is blank or too long."""
        user = User(id=uuid.uuid4(), name=check_user_name(name), profile_image=profile_image)
        await self.db_pool.write_txn("create_user", insert_users_txn, [user], utcnow())
        return user

    async def get_user(self, user_id: uuid.UUID) -> User | None:
        found = await self.db_pool.read_txn("get_user", _select_users_txn, [user_id])
        return found.get(user_id)

    async def get_users(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, User]:
        """The users among ``ids`` that exist, by id (unknown ids are simply absent)."""
        if not ids:
            return {}
        return await self.db_pool.read_txn("get_users", _select_users_txn, ids)
