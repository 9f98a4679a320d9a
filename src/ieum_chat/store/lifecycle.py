"""How couples and accounts end: dissolution, account deletion, and the purge that erases
what they leave behind once the retention period has passed.

Ending is immediate and reversible by nobody: a dissolved couple refuses every append
(append function v4 and later, or the same check in ``appends``) and every change; a deleted
user is no user of the chat. Erasure waits for the retention period (the operator's promise to
its users), then removes every row that holds what the members wrote or did: messages (with
their edits' texts, reactions and read marks), the stream's events, the hides, the uploads'
rows, the couple, and the rows of deleted accounts that no couple refers to any more. The
uploaded files are not rows: the chat layer deletes them before it purges a couple's rows, so
a purge that stops half way is simply run again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, delete, exists, func, or_, select, update
from sqlalchemy.engine import Connection

from ieum_chat.store.couples import COUPLE_COLUMNS, couple_from_row, member_of
from ieum_chat.store.pool import SQLBaseStore
from ieum_chat.store.records import SYSTEM_USER_ID, Couple, User
from ieum_chat.store.schema import (
    couples,
    deliveries,
    delivery_cursors,
    devices,
    message_events,
    message_hides,
    messages,
    uploads,
    users,
    utcnow,
)
from ieum_chat.store.users import USER_COLUMNS, user_from_row

__all__ = ["CoupleErasure", "LifecycleStore", "PurgePlan", "dissolve_couple_txn"]


@dataclass(frozen=True, slots=True)
class CoupleErasure:
    """A dissolved couple past its retention, and how many rows of each kind it holds."""

    couple_id: uuid.UUID
    dissolved_at: datetime
    messages: int
    events: int
    hides: int


@dataclass(frozen=True, slots=True)
class PurgePlan:
    """What a purge run erases: dissolved couples, and deleted accounts no couple refers to
    once those are gone."""

    couples: tuple[CoupleErasure, ...]
    users: tuple[uuid.UUID, ...]


def dissolve_couple_txn(conn: Connection, couple_id: uuid.UUID, now: datetime) -> Couple | None:
    """End the couple (once: a second call keeps the first time). ``None`` if there is none.

    The row is locked as appends lock it: a batch that committed first stored its messages
    while the couple was whole, and every later one is refused."""
    row = conn.execute(
        select(*COUPLE_COLUMNS).where(couples.c.id == couple_id).with_for_update(key_share=True)
    ).first()
    if row is None:
        return None
    couple = couple_from_row(row)
    if couple.dissolved_at is not None:
        return couple
    conn.execute(update(couples).where(couples.c.id == couple_id).values(dissolved_at=now))
    return Couple(couple.id, couple.user1_id, couple.user2_id, dissolved_at=now)


def _delete_user_txn(
    conn: Connection, user_id: uuid.UUID, now: datetime
) -> tuple[User, Couple | None] | None:
    row = conn.execute(select(*USER_COLUMNS).where(users.c.id == user_id).with_for_update()).first()
    if row is None:
        return None
    user = user_from_row(row)
    if user.deleted_at is None:
        conn.execute(update(users).where(users.c.id == user_id).values(deleted_at=now))
        user = User(user.id, user.name, user.profile_image, deleted_at=now)
    active = conn.execute(
        select(couples.c.id).where(member_of(user_id), couples.c.dissolved_at.is_(None))
    ).scalars()
    dissolved = None
    for couple_id in list(active):
        dissolved = dissolve_couple_txn(conn, couple_id, now)
    # Their devices stop working at once: registrations and the pushes still owed to them.
    conn.execute(delete(deliveries).where(deliveries.c.user_id == user_id))
    conn.execute(delete(devices).where(devices.c.user_id == user_id))
    return user, dissolved


def _counts(conn: Connection, table: Table, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    column = table.c.couple_id
    query = select(column, func.count()).where(column.in_(ids)).group_by(column)
    return {row[0]: int(row[1]) for row in conn.execute(query)}


def _plan_txn(conn: Connection, cutoff: datetime) -> PurgePlan:
    rows = conn.execute(
        select(couples.c.id, couples.c.dissolved_at)
        .where(couples.c.dissolved_at < cutoff)
        .order_by(couples.c.dissolved_at, couples.c.id)
    ).all()
    ids = [row.id for row in rows]
    counted = [_counts(conn, t, ids) for t in (messages, message_events, message_hides)]
    erased = tuple(
        CoupleErasure(row.id, row.dissolved_at, *(count.get(row.id, 0) for count in counted))
        for row in rows
    )
    # Deleted accounts whose every couple is among those erased now (or already gone).
    remaining = select(couples.c.id).where(
        or_(couples.c.user1_id == users.c.id, couples.c.user2_id == users.c.id),
        couples.c.dissolved_at.is_(None) | (couples.c.dissolved_at >= cutoff),
    )
    gone = conn.execute(
        select(users.c.id)
        .where(users.c.deleted_at < cutoff, ~exists(remaining))
        .order_by(users.c.id)
    ).scalars()
    return PurgePlan(erased, tuple(gone))


def _erase_couple_txn(conn: Connection, couple_id: uuid.UUID, cutoff: datetime) -> bool:
    """Delete every row of a dissolved couple past ``cutoff``; False if it is not (any more)."""
    still = conn.execute(
        select(couples.c.id)
        .where(couples.c.id == couple_id, couples.c.dissolved_at < cutoff)
        .with_for_update()
    ).first()
    if still is None:
        return False
    for table in (message_hides, message_events, messages, deliveries, uploads):
        conn.execute(delete(table).where(table.c.couple_id == couple_id))
    conn.execute(delete(delivery_cursors).where(delivery_cursors.c.stream_id == couple_id))
    conn.execute(delete(couples).where(couples.c.id == couple_id))
    return True


def _erase_users_txn(conn: Connection, user_ids: tuple[uuid.UUID, ...], cutoff: datetime) -> int:
    referenced = select(couples.c.id).where(
        or_(couples.c.user1_id == users.c.id, couples.c.user2_id == users.c.id)
    )
    # A user's devices went with the account; a stream cursor of theirs goes now (its
    # user.erased was told, or never will be).
    erased = select(users.c.id).where(
        users.c.id.in_(user_ids),
        users.c.id != SYSTEM_USER_ID,
        users.c.deleted_at < cutoff,
        ~exists(referenced),
    )
    conn.execute(delete(devices).where(devices.c.user_id.in_(erased)))
    conn.execute(delete(delivery_cursors).where(delivery_cursors.c.stream_id.in_(erased)))
    return int(
        conn.execute(
            delete(users).where(
                users.c.id.in_(user_ids),
                users.c.id != SYSTEM_USER_ID,
                users.c.deleted_at < cutoff,
                ~exists(referenced),
            )
        ).rowcount
    )


class LifecycleStore(SQLBaseStore):
    async def dissolve_couple(
        self, couple_id: uuid.UUID, *, now: datetime | None = None
    ) -> Couple | None:
        """End the couple at ``now`` (naive UTC; default: the present), idempotent: a
        dissolved couple is answered as it is, with its first ``dissolved_at``. ``None`` if
        there is no such couple."""
        return await self.db_pool.write_txn(
            "dissolve_couple", dissolve_couple_txn, couple_id, now or utcnow()
        )

    async def delete_user(
        self, user_id: uuid.UUID, *, now: datetime | None = None
    ) -> tuple[User, Couple | None] | None:
        """Mark the account deleted at ``now`` (naive UTC; default: the present) and
        dissolve its active couple, in one transaction (idempotent: a deleted account keeps
        its first ``deleted_at``). The user as now, and the couple it was in (``None``: none
        was active); ``None`` if there is no such user."""
        if user_id == SYSTEM_USER_ID:
            return None
        return await self.db_pool.write_txn(
            "delete_user", _delete_user_txn, user_id, now or utcnow()
        )

    async def purge_plan(self, cutoff: datetime) -> PurgePlan:
        """What erasing the couples dissolved, and accounts deleted, before ``cutoff`` (naive
        UTC) removes."""
        return await self.db_pool.read_txn("purge_plan", _plan_txn, cutoff)

    async def erase_couple(self, couple_id: uuid.UUID, cutoff: datetime) -> bool:
        """Delete the rows of one couple dissolved before ``cutoff``, in one transaction."""
        return await self.db_pool.write_txn("erase_couple", _erase_couple_txn, couple_id, cutoff)

    async def erase_users(self, user_ids: tuple[uuid.UUID, ...], cutoff: datetime) -> int:
        """Delete the rows of accounts deleted before ``cutoff`` that no couple refers to."""
        if not user_ids:
            return 0
        return await self.db_pool.write_txn("erase_users", _erase_users_txn, user_ids, cutoff)
