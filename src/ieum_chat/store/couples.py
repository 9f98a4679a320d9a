"""Couples: the two-member rooms. A user belongs to at most one active couple; a couple
that ends (dissolved) stays closed, and its members may form new couples, with new streams."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, insert, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from ieum_chat.store.pool import AnyRow, SQLBaseStore
from ieum_chat.store.records import SYSTEM_USER_ID, Couple, User, new_id
from ieum_chat.store.schema import couples, users, utcnow
from ieum_chat.store.users import check_user_name, insert_users_txn

__all__ = [
    "COUPLE_COLUMNS",
    "COUPLE_OF",
    "CouplesStore",
    "PairingRefusal",
    "PairingRefused",
    "couple_from_row",
    "couple_of_txn",
    "member_of",
]

COUPLE_COLUMNS = (couples.c.id, couples.c.user1_id, couples.c.user2_id, couples.c.dissolved_at)


class PairingRefusal(enum.Enum):
    SAME_USER = "same user"
    UNKNOWN_USER = "unknown user"
    ALREADY_PAIRED = "already paired"


class PairingRefused(ValueError):
    """Two users cannot be paired; ``reason`` says why (the service API answers 400, 404,
    409 by it)."""

    def __init__(self, reason: PairingRefusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def couple_from_row(row: AnyRow | Sequence[Any]) -> Couple:
    """A row (SQLAlchemy's or asyncpg's) whose first columns are ``COUPLE_COLUMNS``."""
    return Couple(id=row[0], user1_id=row[1], user2_id=row[2], dissolved_at=row[3])


def member_of(user_id: uuid.UUID | BindParameter[Any]) -> ColumnElement[bool]:
    """The SQL condition "``user_id`` (a value, or a parameter) is one of the couple's
    members"."""
    return or_(couples.c.user1_id == user_id, couples.c.user2_id == user_id)


def _select_couple_txn(conn: Connection, couple_id: uuid.UUID) -> Couple | None:
    row = conn.execute(select(*COUPLE_COLUMNS).where(couples.c.id == couple_id)).first()
    return None if row is None else couple_from_row(row)


# A member's active couple, the member the parameter ``user_id``. Built once: building it per
# call took about three quarters as long as executing it (py-spy, GET /chat/room).
COUPLE_OF = (
    select(*COUPLE_COLUMNS)
    .where(member_of(bindparam("user_id")), couples.c.dissolved_at.is_(None))
    .order_by(couples.c.created_at, couples.c.id)
    .limit(1)
)


def couple_of_txn(conn: Connection, user_id: uuid.UUID) -> Couple | None:
    row = conn.execute(COUPLE_OF, {"user_id": user_id}).first()
    return None if row is None else couple_from_row(row)


def _create_couple_txn(conn: Connection, user_a: uuid.UUID, user_b: uuid.UUID) -> Couple:
    # Lock both users (in id order, so two concurrent pairings cannot deadlock) before the
    # "already in a couple" check; otherwise two requests could each pair the same user.
    members = sorted({user_a, user_b})
    locked = conn.execute(
        select(users.c.id)
        .where(users.c.id.in_(members), users.c.deleted_at.is_(None), users.c.id != SYSTEM_USER_ID)
        .order_by(users.c.id)
        .with_for_update(key_share=True)
    ).scalars()
    missing = set(members) - set(locked)
    if missing:
        raise PairingRefused(
            PairingRefusal.UNKNOWN_USER,
            f"no such user: {', '.join(sorted(str(u) for u in missing))}",
        )
    taken = conn.execute(
        select(couples.c.user1_id, couples.c.user2_id).where(
            or_(couples.c.user1_id.in_(members), couples.c.user2_id.in_(members)),
            couples.c.dissolved_at.is_(None),
        )
    ).all()
    paired = {u for row in taken for u in (row.user1_id, row.user2_id)} & set(members)
    if paired:
        raise PairingRefused(
            PairingRefusal.ALREADY_PAIRED,
            f"user already in a couple: {', '.join(sorted(str(u) for u in paired))}",
        )
    couple = Couple(id=new_id(), user1_id=user_a, user2_id=user_b)
    conn.execute(
        insert(couples).values(
            id=couple.id, user1_id=user_a, user2_id=user_b, created_at=utcnow(), last_seq=0
        )
    )
    return couple


def _seed_couples_txn(conn: Connection, pairs: list[tuple[Couple, User, User]]) -> None:
    now = utcnow()
    insert_users_txn(conn, [user for _, a, b in pairs for user in (a, b)], now)
    conn.execute(
        insert(couples),
        [
            {
                "id": couple.id,
                "user1_id": couple.user1_id,
                "user2_id": couple.user2_id,
                "created_at": now,
                "last_seq": 0,
            }
            for couple, _, _ in pairs
        ],
    )


class CouplesStore(SQLBaseStore):
    async def create_couple(self, user_a: uuid.UUID, user_b: uuid.UUID) -> Couple:
        """Pair two users. :class:`PairingRefused` (a ValueError) if they are the same user,
        if either does not exist (or was deleted) or if either is already in an active
        couple."""
        if user_a == user_b:
            raise PairingRefused(
                PairingRefusal.SAME_USER, f"a couple needs two different users, got {user_a} twice"
            )
        return await self.db_pool.write_txn("create_couple", _create_couple_txn, user_a, user_b)

    async def get_couple(self, couple_id: uuid.UUID) -> Couple | None:
        """The couple, dissolved or not (see :attr:`Couple.active`)."""
        return await self.db_pool.read_txn("get_couple", _select_couple_txn, couple_id)

    async def couple_of(self, user_id: uuid.UUID) -> Couple | None:
        """The active couple ``user_id`` belongs to, if any."""
        return await self.db_pool.read_txn("couple_of", couple_of_txn, user_id)

    async def seed_couples(
        self, n: int, *, name_prefix: str = "user"
    ) -> list[tuple[Couple, User, User]]:
        """Create ``n`` couples and their ``2n`` users in one transaction (bulk inserts).

        Users are named ``{name_prefix}{i}a`` and ``{name_prefix}{i}b``, ``i`` from 1.
        """
        if n < 0:
            raise ValueError(f"cannot seed a negative number of couples ({n})")
        if n == 0:
            return []
        check_user_name(f"{name_prefix}{n}a")  # the longest name we will make
        pairs: list[tuple[Couple, User, User]] = []
        for i in range(1, n + 1):
            a = User(id=new_id(), name=f"{name_prefix}{i}a", profile_image=None)
            b = User(id=new_id(), name=f"{name_prefix}{i}b", profile_image=None)
            pairs.append((Couple(id=new_id(), user1_id=a.id, user2_id=b.id), a, b))
        await self.db_pool.write_txn("seed_couples", _seed_couples_txn, pairs)
        return pairs
