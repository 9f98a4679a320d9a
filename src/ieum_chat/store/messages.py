"""Messages: the append path (seq assignment, tempId dedup), read marks and history.

Order within a couple is ``seq``: 1, 2, 3... with no gap, assigned at commit from the couple's
``last_seq`` counter. A batch locks the counters of every couple it touches (in id order, so
concurrent batches cannot deadlock), refuses on their own the messages whose couple is gone or
whose sender is not a member, looks up all its tempIds in one query, bumps the counters with
one executemany and inserts every new row with another: four statements for a batch of up to
500 couples and 500 tempIds, whatever its size otherwise. Because the tempId lookup runs after
the counter lock, a concurrent batch on another process carrying the same tempId has either
committed (and is found) or is still waiting on the lock. (On SQLite the lock is the single
writer, see ``engines``.)

That is the SQLite path. On PostgreSQL the same steps run on the server, in one call of
``ieum_append_messages`` (migration 0005) over a raw asyncpg connection (``asyncpg_pool``):
the batch travels as one array per column, with each tempId key once (a repeat later in the
batch is answered here, with its first occurrence's outcome), and comes back as one whole
message row per message, with its outcome. Both paths read rows with one converter,
``records.message_from_row``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    Select,
    bindparam,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from ieum_chat.errors import StoreError
from ieum_chat.store.engines import BaseEngine
from ieum_chat.store.pool import AnyRow, SQLBaseStore
from ieum_chat.store.records import (
    MESSAGE_FIELDS,
    NEW_MESSAGE_FIELDS,
    Appended,
    Message,
    NewMessage,
    Refusal,
    Refused,
    Stored,
    message_from_row,
)
from ieum_chat.store.schema import couples, messages, to_db_time

if TYPE_CHECKING:
    from ieum_chat.store.asyncpg_pool import AsyncpgPool

__all__ = [
    "TEMP_ID_MAX",
    "TYPE_MAX",
    "MessagesStore",
    "dedup_query",
    "page_query",
]

TEMP_ID_MAX = 64  # messages.temp_id is VARCHAR(64)
TYPE_MAX = 20  # messages.type is VARCHAR(20)

# Items per IN (...) list; 3 bind parameters per tempId key stays far below driver limits.
_CHUNK = 500

# Every SELECT and RETURNING of whole messages: the columns of Message's fields, in order.
_COLUMNS = tuple(messages.c[name] for name in MESSAGE_FIELDS)

_DedupKey = tuple[uuid.UUID, uuid.UUID, str]
_T = TypeVar("_T")


def _chunks(items: Sequence[_T], size: int = _CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def page_query(
    couple_id: uuid.UUID,
    *,
    after_seq: int | None = None,
    before_seq: int | None = None,
    limit: int = 50,
    ascending: bool = False,
) -> Select[Any]:
    """One page of a couple's history: a range scan of ``uq_messages_couple_seq``, no OFFSET."""
    query = select(*_COLUMNS).where(messages.c.couple_id == couple_id)
    if after_seq is not None:
        query = query.where(messages.c.seq > after_seq)
    if before_seq is not None:
        query = query.where(messages.c.seq < before_seq)
    order = messages.c.seq.asc() if ascending else messages.c.seq.desc()
    return query.order_by(order).limit(limit)


def dedup_query(
    policy: BaseEngine, keys: Sequence[tuple[uuid.UUID, uuid.UUID, str]]
) -> Select[Any]:
    """The stored messages with any of these ``(couple_id, sender_id, temp_id)``: one probe of
    ``uq_messages_couple_sender_temp`` per key."""
    key_columns = (messages.c.couple_id, messages.c.sender_id, messages.c.temp_id)
    return select(*_COLUMNS).where(policy.in_tuples(key_columns, keys))


def _is_member(couple_id: uuid.UUID, user_id: uuid.UUID) -> ColumnElement[bool]:
    return exists().where(
        couples.c.id == couple_id,
        or_(couples.c.user1_id == user_id, couples.c.user2_id == user_id),
    )


def _unread_from_partner(couple_id: uuid.UUID, reader_id: uuid.UUID) -> list[ColumnElement[bool]]:
    # couple_id + is_read is the prefix of the plan's idx_messages_unread; the unread rows of
    # one couple are few, so filtering the sender among them costs nothing.
    return [
        messages.c.couple_id == couple_id,
        messages.c.is_read == false(),
        messages.c.sender_id != reader_id,
        _is_member(couple_id, reader_id),
    ]


def _not_a_member(new: NewMessage) -> Refused:
    return Refused(
        new,
        Refusal.NOT_A_MEMBER,
        f"message {new.id}: couple {new.couple_id} does not exist "
        f"or {new.sender_id} is not one of its members",
    )


def _append_messages_txn(
    conn: Connection, policy: BaseEngine, batch: Sequence[NewMessage]
) -> list[Appended]:
    # 1. lock the counters, in id order; the members come along, for step 2
    couple_ids = sorted({m.couple_id for m in batch})
    last_seq: dict[uuid.UUID, int] = {}
    members: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]] = {}
    for chunk in _chunks(couple_ids):
        locked = conn.execute(
            select(couples.c.id, couples.c.last_seq, couples.c.user1_id, couples.c.user2_id)
            .where(couples.c.id.in_(chunk))
            .order_by(couples.c.id)
            # NO KEY UPDATE: FK checks of concurrent inserts (KEY SHARE) need not wait on it
            .with_for_update(key_share=True)
        )
        for row in locked:
            last_seq[row.id] = row.last_seq
            members[row.id] = (row.user1_id, row.user2_id)

    # 2. a message whose couple is gone, or whose sender is not a member, fails on its own
    allowed = [m for m in batch if m.sender_id in members.get(m.couple_id, ())]

    # 3. every tempId of the batch, in one lookup
    keys: list[_DedupKey] = list(
        dict.fromkeys(
            (m.couple_id, m.sender_id, m.temp_id) for m in allowed if m.temp_id is not None
        )
    )
    known: dict[_DedupKey, Message] = {}
    for key_chunk in _chunks(keys):
        for row in conn.execute(dedup_query(policy, key_chunk)):
            known[(row.couple_id, row.sender_id, row.temp_id)] = message_from_row(row)

    # 4. number the new ones
    results: list[Appended] = []
    fresh: list[Message] = []
    for new in batch:
        if new.sender_id not in members.get(new.couple_id, ()):
            results.append(_not_a_member(new))
            continue
        key = (new.couple_id, new.sender_id, new.temp_id) if new.temp_id is not None else None
        prior = known.get(key) if key is not None else None
        if prior is not None:
            results.append(Stored(prior, created=False))
            continue
        seq = last_seq[new.couple_id] = last_seq[new.couple_id] + 1
        message = new.numbered(seq)
        if key is not None:
            known[key] = message
        fresh.append(message)
        results.append(Stored(message, created=True))
    if not fresh:
        return results

    # 5. one bump per couple, one insert for the batch
    bumped = sorted({m.couple_id for m in fresh})
    conn.execute(
        update(couples)
        .where(couples.c.id == bindparam("b_id"))
        .values(last_seq=bindparam("b_last_seq")),
        [{"b_id": c, "b_last_seq": last_seq[c]} for c in bumped],
    )
    conn.execute(
        insert(messages), [{name: getattr(m, name) for name in MESSAGE_FIELDS} for m in fresh]
    )
    return results


_APPEND_CALL = "SELECT * FROM ieum_append_messages($1, $2, $3, $4, $5, $6, $7, $8)"
# Columns of the function's rows after the message's own (migration 0005).
_ORD = len(MESSAGE_FIELDS)
_OUTCOME = _ORD + 1


async def _append_messages_call(pool: AsyncpgPool, batch: Sequence[NewMessage]) -> list[Appended]:
    # each tempId key once; per message: (its index in `sent`, whether it repeats an earlier one)
    sent: list[NewMessage] = []
    picks: list[tuple[int, bool]] = []
    first: dict[_DedupKey, int] = {}
    for new in batch:
        if new.temp_id is not None:
            key = (new.couple_id, new.sender_id, new.temp_id)
            index = first.get(key)
            if index is not None:
                picks.append((index, True))
                continue
            first[key] = len(sent)
        picks.append((len(sent), False))
        sent.append(new)

    # one array per parameter: the function takes NewMessage's fields, in order
    columns = [[getattr(m, name) for m in sent] for name in NEW_MESSAGE_FIELDS]
    rows = await pool.fetch("append_messages", _APPEND_CALL, *columns)

    outcomes: list[Appended | None] = [None] * len(sent)
    for row in rows:
        index = row[_ORD] - 1
        outcome = row[_OUTCOME]
        if outcome == "refused":
            outcomes[index] = _not_a_member(sent[index])
        else:
            outcomes[index] = Stored(message_from_row(row), created=outcome == "stored")

    results: list[Appended] = []
    for index, repeat in picks:
        result = outcomes[index]
        if result is None:
            # Cannot happen unless the function and this code disagree. The batch may be
            # stored: the caller reports a failure and clients retry with their tempIds.
            raise StoreError(f"append_messages failed: no outcome for message {sent[index].id}")
        if repeat:
            result = (
                Stored(result.message, created=False)
                if isinstance(result, Stored)
                else _not_a_member(batch[len(results)])
            )
        results.append(result)
    return results


def _mark_read_txn(  # noqa: PLR0917 - a transaction function takes its arguments positionally
    conn: Connection,
    couple_id: uuid.UUID,
    reader_id: uuid.UUID,
    message_ids: Sequence[uuid.UUID] | None,
    up_to_seq: int | None,
    read_at: datetime,
) -> list[Message]:
    # `is_read = false` in the WHERE makes a concurrent second mark skip rows the first
    # changed (PostgreSQL re-checks it after the row lock), so each change is returned once.
    statement = (
        update(messages)
        .where(*_unread_from_partner(couple_id, reader_id))
        .values(is_read=True, read_at=read_at)
        .returning(*_COLUMNS)
    )
    rows: list[AnyRow] = []
    if up_to_seq is not None:
        rows.extend(conn.execute(statement.where(messages.c.seq <= up_to_seq)))
    else:
        wanted = list(dict.fromkeys(message_ids or ()))
        for chunk in _chunks(wanted):
            rows.extend(conn.execute(statement.where(messages.c.id.in_(chunk))))
    return sorted((message_from_row(row) for row in rows), key=lambda m: m.seq)


def _select_messages_txn(conn: Connection, query: Select[Any]) -> list[Message]:
    return [message_from_row(row) for row in conn.execute(query)]


def _unread_count_txn(conn: Connection, couple_id: uuid.UUID, reader_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(messages)
    count = conn.execute(query.where(*_unread_from_partner(couple_id, reader_id))).scalar_one()
    return int(count)


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
        if self.db_pool.append_pool is not None:
            appended = await _append_messages_call(self.db_pool.append_pool, fit)
        else:
            appended = await self.db_pool.write_txn(
                "append_messages", _append_messages_txn, self.db_pool.policy, fit
            )
        answers = iter(appended)
        results: list[Appended] = []
        for original, new in zip(batch, checked, strict=True):
            result = new if isinstance(new, Refused) else next(answers)
            if isinstance(result, Refused) and result.new is not original:
                result = dataclasses.replace(result, new=original)
            results.append(result)
        return results

    async def mark_read(
        self,
        couple_id: uuid.UUID,
        reader_id: uuid.UUID,
        *,
        message_ids: Sequence[uuid.UUID] | None = None,
        up_to_seq: int | None = None,
        read_at: datetime,
    ) -> list[Message]:
        """Mark the partner's unread messages read: those in ``message_ids`` or every one with
        ``seq <= up_to_seq`` (give exactly one). Ids of other couples or of the reader's own
        messages are ignored; a reader who is not a member of the couple changes nothing.
        Returns the rows that changed, in seq order, as they are now.
        """
        if (message_ids is None) == (up_to_seq is None):
            raise ValueError("mark_read needs exactly one of message_ids or up_to_seq")
        if message_ids is not None and not message_ids:
            return []
        return await self.db_pool.write_txn(
            "mark_read",
            _mark_read_txn,
            couple_id,
            reader_id,
            message_ids,
            up_to_seq,
            to_db_time(read_at),
        )

    async def get_messages(
        self,
        couple_id: uuid.UUID,
        *,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int = 50,
        ascending: bool = False,
    ) -> list[Message]:
        """Up to ``limit`` messages with ``after_seq < seq < before_seq`` (bounds optional),
        newest first unless ``ascending`` (the replay path: ``after_seq`` + ``ascending``)."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        query = page_query(
            couple_id, after_seq=after_seq, before_seq=before_seq, limit=limit, ascending=ascending
        )
        return await self.db_pool.read_txn("get_messages", _select_messages_txn, query)

    async def last_message(self, couple_id: uuid.UUID) -> Message | None:
        page = await self.db_pool.read_txn(
            "last_message", _select_messages_txn, page_query(couple_id, limit=1)
        )
        return page[0] if page else None

    async def unread_count(self, couple_id: uuid.UUID, reader_id: uuid.UUID) -> int:
        """How many of the partner's messages ``reader_id`` has not read (0 for non-members)."""
        return await self.db_pool.read_txn("unread_count", _unread_count_txn, couple_id, reader_id)
