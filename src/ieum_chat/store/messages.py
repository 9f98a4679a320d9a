"""Messages: appends and history (read marks and other changes: ``changes``).

Order within a couple is ``seq``: 1, 2, 3... with no gap, assigned at commit from the couple's
``last_seq`` counter. :meth:`MessagesStore.append_messages` checks that each message's fields
fit their columns, then hands the batch to the append path the engine chose (``appends``),
which numbers, de-duplicates by tempId and stores it in one transaction. Every whole-message
row is read through one converter, ``records.message_from_row``, in the column order of
``records.Message``.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import (
    BindParameter,
    Integer,
    Select,
    bindparam,
    exists,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from ieum_chat.store.couples import COUPLE_OF, couple_from_row
from ieum_chat.store.engines import BaseEngine
from ieum_chat.store.pool import SQLBaseStore
from ieum_chat.store.records import (
    MESSAGE_FIELDS,
    Appended,
    Message,
    NewMessage,
    Refusal,
    Refused,
    RoomView,
    message_from_row,
)
from ieum_chat.store.routing import StreamMark
from ieum_chat.store.schema import couples, message_hides, messages, to_db_time

__all__ = [
    "MESSAGE_COLUMNS",
    "TEMP_ID_MAX",
    "TYPE_MAX",
    "MessagesStore",
    "Prepared",
    "chunks",
    "dedup_query",
    "lock_counters_txn",
    "lookup_query",
    "page_query",
    "unread_count_txn",
    "unread_from_partner",
]

TEMP_ID_MAX = 64  # messages.temp_id is VARCHAR(64)
TYPE_MAX = 20  # messages.type is VARCHAR(20)

# Items per IN (...) list; 3 bind parameters per tempId key stays far below driver limits.
_CHUNK = 500

# Every SELECT and RETURNING of whole messages: the columns of Message's fields, in order.
MESSAGE_COLUMNS = tuple(messages.c[name] for name in MESSAGE_FIELDS)

_T = TypeVar("_T")


def chunks(items: Sequence[_T], size: int = _CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A query as a statement built once per shape (a history page: which bounds, which
    order, for a viewer or not; a tempId lookup: one per database) and the values of its
    parameters. Reusing the statement spares building it and computing its cache key for
    every call."""

    statement: Select[Any]
    params: dict[str, Any]

    def bound(self) -> Select[Any]:
        """The statement with the values in it (to compile, or EXPLAIN)."""
        return self.statement.params(self.params)


@functools.cache
def _page_statement(*, after: bool, before: bool, ascending: bool, viewer: bool) -> Select[Any]:
    query = select(*MESSAGE_COLUMNS).where(messages.c.couple_id == bindparam("couple_id"))
    if viewer:
        query = query.where(~_hidden_by(bindparam("viewer_id")))
    if after:
        query = query.where(messages.c.seq > bindparam("after_seq"))
    if before:
        query = query.where(messages.c.seq < bindparam("before_seq"))
    order = messages.c.seq.asc() if ascending else messages.c.seq.desc()
    return query.order_by(order).limit(bindparam("limit", type_=Integer))


def page_query(
    couple_id: uuid.UUID,
    *,
    after_seq: int | None = None,
    before_seq: int | None = None,
    limit: int = 50,
    ascending: bool = False,
    viewer_id: uuid.UUID | None = None,
) -> Prepared:
    """One page of a couple's history: a range scan of ``uq_messages_couple_seq``, no OFFSET.
    With ``viewer_id``, without the messages that member hid (one primary-key probe each)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    statement = _page_statement(
        after=after_seq is not None,
        before=before_seq is not None,
        ascending=ascending,
        viewer=viewer_id is not None,
    )
    params = {
        "couple_id": couple_id,
        "viewer_id": viewer_id,
        "after_seq": after_seq,
        "before_seq": before_seq,
        "limit": limit,
    }
    return Prepared(statement, {key: value for key, value in params.items() if value is not None})


# NO KEY UPDATE: FK checks of concurrent inserts (KEY SHARE) need not wait on it.
_LOCK_COUNTERS = (
    select(couples.c.id, couples.c.last_seq, couples.c.user1_id, couples.c.user2_id)
    .where(
        couples.c.id.in_(bindparam("couple_ids", expanding=True)),
        couples.c.dissolved_at.is_(None),
    )
    .order_by(couples.c.id)
    .with_for_update(key_share=True)
)


def lock_counters_txn(
    conn: Connection, couple_ids: Iterable[uuid.UUID]
) -> tuple[dict[uuid.UUID, int], dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]]]:
    """Lock the stream counters of the active couples among ``couple_ids``, in id order (so
    that concurrent batches cannot deadlock): each one's last seq, and its two members. A
    couple that does not exist or was dissolved is in neither."""
    last_seq: dict[uuid.UUID, int] = {}
    members: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]] = {}
    for chunk in chunks(sorted(set(couple_ids))):
        for row in conn.execute(_LOCK_COUNTERS, {"couple_ids": list(chunk)}):
            last_seq[row.id] = row.last_seq
            members[row.id] = (row.user1_id, row.user2_id)
    return last_seq, members


@functools.lru_cache(maxsize=32)  # a few per database policy (an engine's)
def _lookup_statement(
    policy: BaseEngine,
    columns: tuple[ColumnElement[Any], ...],
    key_columns: tuple[ColumnElement[Any], ...],
) -> Select[Any]:
    return select(*columns).where(policy.in_tuples(key_columns))


def lookup_query(
    policy: BaseEngine,
    columns: tuple[ColumnElement[Any], ...],
    key_columns: tuple[ColumnElement[Any], ...],
    keys: Sequence[tuple[Any, ...]],
) -> Prepared:
    """``columns`` of the rows whose ``key_columns`` are any of ``keys`` (one index probe a
    key, :meth:`BaseEngine.in_tuples`), with the statement built once per policy and shape."""
    statement = _lookup_statement(policy, columns, key_columns)
    return Prepared(statement, policy.tuple_keys(key_columns, keys))


_DEDUP_COLUMNS = (messages.c.couple_id, messages.c.sender_id, messages.c.temp_id)


def dedup_query(policy: BaseEngine, keys: Sequence[tuple[uuid.UUID, uuid.UUID, str]]) -> Prepared:
    """The stored messages with any of these ``(couple_id, sender_id, temp_id)``: one probe of
    ``uq_messages_couple_sender_temp`` per key."""
    return lookup_query(policy, MESSAGE_COLUMNS, _DEDUP_COLUMNS, keys)


_Value = uuid.UUID | BindParameter[Any]  # a value, or a parameter of a statement built once


def _is_member(couple_id: _Value, user_id: _Value) -> ColumnElement[bool]:
    return exists().where(
        couples.c.id == couple_id,
        or_(couples.c.user1_id == user_id, couples.c.user2_id == user_id),
    )


def _hidden_by(user_id: _Value) -> ColumnElement[bool]:
    return exists().where(
        message_hides.c.user_id == user_id, message_hides.c.message_id == messages.c.id
    )


def unread_from_partner(couple_id: _Value, reader_id: _Value) -> list[ColumnElement[bool]]:
    return [*_unread_in(couple_id, reader_id), _is_member(couple_id, reader_id)]


def _unread_in(
    couple_id: _Value | ColumnElement[Any], reader_id: _Value
) -> list[ColumnElement[bool]]:
    """The partner's messages ``reader_id`` has not read, in a couple known to be the reader's."""
    # couple_id + is_read is the prefix of the plan's idx_messages_unread; the unread rows of
    # one couple are few, so filtering the sender among them costs nothing.
    return [
        messages.c.couple_id == couple_id,
        messages.c.is_read == false(),
        messages.c.sender_id != reader_id,
    ]


def _count_unread(where: list[ColumnElement[bool]], reader_id: _Value) -> Select[Any]:
    # Unsent messages and those the reader hid are not waiting to be read.
    return (
        select(func.count())
        .select_from(messages)
        .where(*where, messages.c.unsent_at.is_(None), ~_hidden_by(reader_id))
    )


# Built once, like a history page's statement: it was built, and its cache key computed, for
# every count.
_UNREAD_COUNT = _count_unread(
    unread_from_partner(bindparam("couple_id"), bindparam("reader_id")), bindparam("reader_id")
)

# A member's room in one statement: the active couple (``COUPLE_OF``), the stream's position
# (the couple's own ``last_seq``) and the member's unread count, correlated to the couple.
_ROOM = COUPLE_OF.add_columns(
    couples.c.last_seq,
    _count_unread(_unread_in(couples.c.id, bindparam("user_id")), bindparam("user_id"))
    .scalar_subquery()
    .label("unread"),
)
_ROOM_POSITION, _ROOM_UNREAD = len(COUPLE_OF.selected_columns), len(COUPLE_OF.selected_columns) + 1


def unread_count_txn(conn: Connection, couple_id: uuid.UUID, reader_id: uuid.UUID) -> int:
    params = {"couple_id": couple_id, "reader_id": reader_id}
    return int(conn.execute(_UNREAD_COUNT, params).scalar_one())


def _messages(rows: Sequence[Sequence[Any]]) -> list[Message]:
    return [message_from_row(row) for row in rows]


def _checked(new: NewMessage) -> NewMessage | Refused:
    if new.temp_id is not None and len(new.temp_id) > TEMP_ID_MAX:
        detail = (
            f"tempId of message {new.id} is {len(new.temp_id)} characters; "
            f"at most {TEMP_ID_MAX} are stored"
        )
        return Refused(new, Refusal.DOES_NOT_FIT, detail)
    if not new.type or len(new.type) > TYPE_MAX:
        detail = f"message {new.id} has type {new.type!r}; 1 to {TYPE_MAX} characters"
        return Refused(new, Refusal.DOES_NOT_FIT, detail)
    created_at = to_db_time(new.created_at)
    if created_at is new.created_at:
        return new
    return dataclasses.replace(new, created_at=created_at)


class MessagesStore(SQLBaseStore):
    async def append_messages(self, batch: Sequence[NewMessage]) -> list[Appended]:
        """Store a batch (any number of couples) in one transaction; results in batch order.

        A message whose ``(couple_id, sender_id, temp_id)`` is already stored, or appears
        earlier in the batch, is not stored again: its result is the stored row with
        ``created=False``, and it consumes no seq. A message whose couple does not exist,
        whose sender is not one of its members or whose field does not fit its column is
        :class:`Refused` on its own: nothing of it is stored, and the rest of the batch is.
        """
        checked = [_checked(new) for new in batch]
        fit = [new for new in checked if isinstance(new, NewMessage)]
        if not fit:
            return [r for r in checked if isinstance(r, Refused)]
        answers = iter(await self.db_pool.appender.append(fit))
        results: list[Appended] = []
        for original, new in zip(batch, checked, strict=True):
            result = new if isinstance(new, Refused) else next(answers)
            if isinstance(result, Refused) and result.new is not original:
                result = dataclasses.replace(result, new=original)
            results.append(result)
        return results

    async def get_messages(
        self,
        couple_id: uuid.UUID,
        *,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int = 50,
        ascending: bool = False,
        viewer_id: uuid.UUID | None = None,
    ) -> list[Message]:
        """Up to ``limit`` messages with ``after_seq < seq < before_seq`` (bounds optional),
        newest first unless ``ascending``, as they are now; with ``viewer_id``, without the
        ones that member hid. On the primary."""
        query = page_query(
            couple_id,
            after_seq=after_seq,
            before_seq=before_seq,
            limit=limit,
            ascending=ascending,
            viewer_id=viewer_id,
        )
        return _messages(
            await self.db_pool.read_rows("get_messages", query.statement, query.params)
        )

    async def history_page(
        self,
        couple_id: uuid.UUID,
        viewer_id: uuid.UUID,
        *,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int = 50,
        ascending: bool = False,
    ) -> tuple[StreamMark, list[Message]]:
        """:meth:`get_messages` as ``viewer_id`` sees them, with the stream's mark read before
        them (``Reads.marked``): the read replica may answer, if it holds everything committed
        at the mark (``routing``)."""
        query = page_query(
            couple_id,
            after_seq=after_seq,
            before_seq=before_seq,
            limit=limit,
            ascending=ascending,
            viewer_id=viewer_id,
        )
        return await self.reads.marked_rows(
            "history_page", couple_id, viewer_id, query.statement, query.params, convert=_messages
        )

    async def room_view(self, user_id: uuid.UUID) -> RoomView | None:
        """The room of ``user_id``'s active couple as that member sees it (None: not in a
        couple): the couple with its position and the member's unread count, then the last
        message the member has not hidden, read after them (two reads of one statement)."""
        found = await self.db_pool.read_rows("room_view", _ROOM, {"user_id": user_id})
        if not found:
            return None
        row = found[0]
        couple = couple_from_row(row)
        last = page_query(couple.id, limit=1, viewer_id=user_id)
        rows = await self.db_pool.read_rows("room_view", last.statement, last.params)
        position, unread = row[_ROOM_POSITION], row[_ROOM_UNREAD]
        return RoomView(
            couple, int(unread), int(position), message_from_row(rows[0]) if rows else None
        )

    async def unread_count(self, couple_id: uuid.UUID, reader_id: uuid.UUID) -> int:
        """How many of the partner's messages ``reader_id`` has not read (0 for non-members),
        not counting unsent ones or those the reader hid."""
        return await self.db_pool.read_txn("unread_count", unread_count_txn, couple_id, reader_id)
