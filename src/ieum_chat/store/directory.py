"""The directory change feed: which users and couples changed, by stream position.

Triggers (revision 0005) append a row to ``directory_changes`` for every inserted, updated or
deleted user or couple, whoever changed it: this process, another node, the CLI, SQL typed
into the database. A reader keeps the last position it has seen and asks for the rows after
it, as synapse's streams are read; positions grow in commit order, so nothing committed later
can appear below a position already read. Old rows are pruned by age.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection

from ieum_chat.store.pool import SQLBaseStore
from ieum_chat.store.schema import directory_changes

__all__ = ["ChangeKind", "ChangeOp", "DirectoryChange", "DirectoryFeed"]


class ChangeKind(enum.StrEnum):
    USER = "user"
    COUPLE = "couple"


class ChangeOp(enum.StrEnum):
    INSERT = "I"
    UPDATE = "U"
    DELETE = "D"


@dataclass(frozen=True, slots=True)
class DirectoryChange:
    position: int
    kind: ChangeKind
    entity_id: uuid.UUID
    op: ChangeOp


_t = directory_changes


def _position_txn(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(_t.c.position), 0))).scalar_one())


def _changes_txn(conn: Connection, after: int, limit: int) -> list[DirectoryChange]:
    query = (
        select(_t.c.position, _t.c.kind, _t.c.entity_id, _t.c.op)
        .where(_t.c.position > after)
        .order_by(_t.c.position)
        .limit(limit)
    )
    return [
        DirectoryChange(row.position, ChangeKind(row.kind), row.entity_id, ChangeOp(row.op))
        for row in conn.execute(query)
    ]


def _prune_txn(conn: Connection, before: datetime) -> int:
    return int(conn.execute(delete(_t).where(_t.c.changed_at < before)).rowcount)


class DirectoryFeed(SQLBaseStore):
    async def directory_position(self) -> int:
        """The position of the newest change (0 when there is none)."""
        return await self.db_pool.read_txn("directory_position", _position_txn)

    async def directory_changes(self, after: int, *, limit: int = 1000) -> list[DirectoryChange]:
        """The changes after position ``after``, oldest first, at most ``limit``."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        return await self.db_pool.read_txn("directory_changes", _changes_txn, after, limit)

    async def prune_directory_changes(self, before: datetime) -> int:
        """Delete the changes recorded before ``before`` (naive UTC); how many went."""
        return await self.db_pool.write_txn("prune_directory_changes", _prune_txn, before)
