"""The append path of messages, in the form each database runs best.

A batch locks the counters of every couple it touches (in id order, so concurrent batches
cannot deadlock), refuses on their own the messages whose couple is gone or dissolved or whose
sender is not a member (a notice's sender is the system's), looks up all its tempIds in one
query, bumps the counters with one executemany and inserts every new row with another: four
statements for a batch of up to 500 couples and 500 tempIds, whatever its size otherwise.
Because the tempId lookup runs after the counter lock, a concurrent batch on another process
carrying the same tempId has either committed (and is found) or is still waiting on the lock.
(On SQLite the lock is the single writer, see ``engines``.)

The engine chooses (``engines.BaseEngine.appender``), once, when the pool is made:

- :class:`SqliteAppender` (SQLite): those statements, in a named write transaction. A batch
  that repeats no tempId, nor sends one stored before (nearly every batch), runs them on the
  driver's cursor, the values converted as SQLAlchemy stores them
  (``SqliteEngine.stored_forms``); any other goes through SQLAlchemy, in the same transaction;
- :class:`ServerAppender` (PostgreSQL): the same steps on the server, in one call over a
  raw asyncpg connection (``asyncpg_pool``). The batch travels as one JSON parameter, an
  object a message (:func:`batch_json`), with each tempId key once (a repeat later in the
  batch is answered here, with its first occurrence's outcome). First :data:`APPEND_NEW`,
  one statement: no tempId lookup, and one ``(ord, seq)`` per message back, the row being
  what was sent. If a tempId of the batch was stored already, its INSERT violates the
  tempId's unique key (SQLSTATE 23505), the statement stores nothing, and the batch goes to
  ``ieum_append_messages_v5`` (migration 0010; 0005 explains its steps), which looks the
  tempIds up and answers with one whole message row per message.

Both answer alike, one :class:`Stored` or :class:`Refused` per message in batch order, and
read message rows with the one converter, ``records.message_from_row``.
``MessagesStore.append_messages`` checks the fields' sizes before either runs.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import bindparam, insert, update
from sqlalchemy.engine import Connection

from ieum_chat.errors import StoreError
from ieum_chat.store.engines import BaseEngine
from ieum_chat.store.messages import chunks, dedup_query, lock_counters_txn
from ieum_chat.store.records import (
    MESSAGE_FIELDS,
    NEW_MESSAGE_FIELDS,
    NOTICE,
    SYSTEM_USER_ID,
    Appended,
    Message,
    NewMessage,
    Refusal,
    Refused,
    Stored,
    message_from_row,
    message_values,
)
from ieum_chat.store.schema import couples, messages

if TYPE_CHECKING:
    from ieum_chat.store.asyncpg_pool import AsyncpgPool
    from ieum_chat.store.engines import SqliteEngine
    from ieum_chat.store.pool import DatabasePool

__all__ = ["APPEND_NEW", "Appender", "ServerAppender", "SqliteAppender", "batch_json"]

_DedupKey = tuple[uuid.UUID, uuid.UUID, str]


class Appender(abc.ABC):
    """Stores a batch of messages whose fields fit their columns, in one transaction."""

    @abc.abstractmethod
    async def append(self, batch: Sequence[NewMessage]) -> list[Appended]:
        """One outcome per message, in batch order (``MessagesStore.append_messages``)."""

    async def close(self) -> None:  # noqa: B027 - nothing to release unless overridden
        """Release what the appender holds of its own."""


class SqliteAppender(Appender):
    def __init__(self, db_pool: DatabasePool, policy: SqliteEngine) -> None:
        self._db_pool = db_pool
        self._policy = policy
        self._uuid_form = _required(policy.stored_forms([couples.c.id])[0])
        self._fresh_forms = policy.stored_forms([messages.c[name] for name in _FRESH_COLUMNS])

    async def append(self, batch: Sequence[NewMessage]) -> list[Appended]:
        return await self._db_pool.write_txn("append_messages", self._append_txn, batch)

    def _append_txn(self, conn: Connection, batch: Sequence[NewMessage]) -> list[Appended]:
        # The steps of _append_messages_txn on the driver's cursor, in the transaction the
        # pool began (BEGIN IMMEDIATE: the counters are this writer's until it commits), for
        # a batch none of whose tempIds is stored or repeated: through SQLAlchemy's execution
        # and type conversions, a batch of 40 cost the writer two fifths more CPU.
        as_stored = self._uuid_form
        couple_keys = {c: as_stored(c) for c in {m.couple_id for m in batch}}
        sender_keys = {s: as_stored(s) for s in {m.sender_id for m in batch}}
        cursor = conn.connection.cursor()
        try:
            # 1. the counters and members of the active couples among the batch's
            cursor.execute(_SQLITE_COUNTERS, (orjson.dumps(sorted(couple_keys.values())).decode(),))
            rows_read = cursor.fetchall()
            last_seq = {row[0]: row[1] for row in rows_read}
            members = {row[0]: (row[2], row[3]) for row in rows_read}

            # 2. a stored or repeated tempId: the whole general path (nothing written yet)
            keys = [
                (couple_keys[m.couple_id], sender_keys[m.sender_id], m.temp_id)
                for m in batch
                if m.temp_id is not None
            ]
            if keys:
                cursor.execute(_SQLITE_ANY_STORED, (orjson.dumps(keys).decode(),))
                if len(set(keys)) < len(keys) or cursor.fetchone() is not None:
                    return _append_messages_txn(conn, self._policy, batch)

            # 3. number the allowed ones, as _append_messages_txn does
            results: list[Appended] = []
            rows: list[list[object]] = []
            for new in batch:
                couple = couple_keys[new.couple_id]
                if not _may_send(new, sender_keys[new.sender_id], members.get(couple)):
                    results.append(_not_a_member(new))
                    continue
                seq = last_seq[couple] = last_seq[couple] + 1
                message = new.numbered(seq)
                results.append(Stored(message, created=True))
                rows.append(self._fresh_row(message))
            if not rows:
                return results

            # 4. one bump per couple, one insert for the batch
            bumped = {row[_FRESH_COUPLE] for row in rows}
            cursor.executemany(_SQLITE_BUMP, [(last_seq[key], key) for key in bumped])
            cursor.executemany(_SQLITE_INSERT, rows)
            return results
        finally:
            cursor.close()

    def _fresh_row(self, message: Message) -> list[object]:
        values: list[object] = [getattr(message, name) for name in _FRESH_COLUMNS]
        values[_FRESH_MEDIA] = message.media.to_json() if message.media is not None else None
        for index, form in enumerate(self._fresh_forms):
            if form is not None and values[index] is not None:
                values[index] = form(values[index])
        return values


def _required(form: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    if form is None:
        raise TypeError("SQLAlchemy binds a Uuid to SQLite unconverted: keys would not match")
    return form


class ServerAppender(Appender):
    def __init__(self, pool: AsyncpgPool) -> None:
        self.pool = pool

    async def append(self, batch: Sequence[NewMessage]) -> list[Appended]:
        return await _append_messages_call(self.pool, batch)

    async def close(self) -> None:
        await self.pool.close()


def _not_a_member(new: NewMessage) -> Refused:
    return Refused(
        new,
        Refusal.NOT_A_MEMBER,
        f"message {new.id}: couple {new.couple_id} does not exist "
        f"or {new.sender_id} is not one of its members",
    )


def _may_append(new: NewMessage, members: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]]) -> bool:
    return _may_send(new, new.sender_id, members.get(new.couple_id))


def _may_send(new: NewMessage, sender: object, pair: tuple[object, object] | None) -> bool:
    """Whether ``new`` may be stored: its couple is active (``pair``, its members, in the
    form ``sender`` is in) and its sender one of them, or the system sender of a notice."""
    if pair is None:
        return False
    return sender in pair or (new.sender_id == SYSTEM_USER_ID and new.type == NOTICE)


def _append_messages_txn(
    conn: Connection, policy: BaseEngine, batch: Sequence[NewMessage]
) -> list[Appended]:
    # 1. lock the counters, in id order; the members come along, for step 2
    last_seq, members = lock_counters_txn(conn, [m.couple_id for m in batch])

    # 2. a message whose couple is gone or dissolved, or whose sender is not a member (nor
    # the system sender of a notice), fails on its own
    allowed = [m for m in batch if _may_append(m, members)]

    # 3. every tempId of the batch, in one lookup
    keys: list[_DedupKey] = list(
        dict.fromkeys(
            (m.couple_id, m.sender_id, m.temp_id) for m in allowed if m.temp_id is not None
        )
    )
    known: dict[_DedupKey, Message] = {}
    for key_chunk in chunks(keys):
        lookup = dedup_query(policy, key_chunk)
        for row in conn.execute(lookup.statement, lookup.params):
            known[(row.couple_id, row.sender_id, row.temp_id)] = message_from_row(row)

    # 4. number the new ones
    results: list[Appended] = []
    fresh: list[Message] = []
    for new in batch:
        if not _may_append(new, members):
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
    conn.execute(_BUMP, [{"b_id": c, "b_last_seq": last_seq[c]} for c in bumped])
    conn.execute(_INSERT, [message_values(m) for m in fresh])
    return results


# SQLite's statements of SqliteAppender (the keys as json_each lists, as in_tuples does: one
# statement for any number of them, answered from the indexes).
_FRESH_COLUMNS: tuple[str, ...] = (*NEW_MESSAGE_FIELDS, "seq", "is_read")
_FRESH_COUPLE = _FRESH_COLUMNS.index("couple_id")
_FRESH_MEDIA = _FRESH_COLUMNS.index("media")
_SQLITE_COUNTERS = (
    "SELECT id, last_seq, user1_id, user2_id FROM couples "
    "WHERE id IN (SELECT value FROM json_each(?)) AND dissolved_at IS NULL"
)
_SQLITE_ANY_STORED = (
    "SELECT 1 FROM messages WHERE (couple_id, sender_id, temp_id) IN ("
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
    "json_extract(value, '$[2]') FROM json_each(?)) LIMIT 1"
)
_SQLITE_BUMP = "UPDATE couples SET last_seq = ? WHERE id = ?"
_SQLITE_INSERT = (
    f"INSERT INTO messages ({', '.join(_FRESH_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_FRESH_COLUMNS))})"
)

_BUMP = (
    update(couples)
    .where(couples.c.id == bindparam("b_id"))
    .values(last_seq=bindparam("b_last_seq"))
)
_INSERT = insert(messages)


# One statement for a batch of messages never stored before (nearly every batch): it locks
# the couples' counters in id order; refuses each message whose couple is gone or dissolved
# or whose sender is not a member (nor the system sender of a notice); numbers the rest from
# the counters it locked, bumps them and inserts the rows; and answers one (ord, seq) per
# message, seq NULL for a refusal. Everything after the lock reads the couples' rows as the
# lock returned them (the latest, should the lock have waited for another batch's commit),
# never through the statement's snapshot. The server-side function that did the same
# (``ieum_append_new_messages``, migration 0011, kept for nodes that still call it) cost the
# backend a tenth to a fifth more CPU a call (``python -m bench.append_cost``): PL/pgSQL's
# statements, each started on its own, and ON CONFLICT's speculative insertion. A stored
# tempId makes the INSERT fail on the tempId key: the statement, so the batch, is rolled
# back, with no seq taken.
#
# Both statements read the batch from their one parameter, the JSON of batch_json, parsed
# once into rows numbered in batch order (ord, from 1). As eleven arrays, one a column, the
# driver's encoding of a batch cost the server's one thread more (a call timed alone: 40
# messages, about 600 µs of client CPU against 280; 4 messages, 220 against 150), where the
# database takes about as long for 4 messages and a tenth longer for 40
# (``python -m bench.append_cost``).
_BATCH = """batch AS MATERIALIZED (
    SELECT *
    FROM ROWS FROM (
        json_to_recordset($1::json) AS (
            id uuid, couple_id uuid, sender_id uuid, type text, content text,
            image_url text, temp_id text, created_at timestamp, reply_to_id uuid,
            media_url text, media text))
        WITH ORDINALITY
        AS b (id, couple_id, sender_id, type, content, image_url, temp_id, created_at,
              reply_to_id, media_url, media, ord)
)"""
APPEND_NEW = f"""
WITH {_BATCH}, locked AS MATERIALIZED (
    SELECT c.id, c.last_seq, c.user1_id, c.user2_id, c.dissolved_at
    FROM couples AS c
    WHERE c.id = ANY (ARRAY(SELECT b.couple_id FROM batch AS b))
    ORDER BY c.id
    FOR NO KEY UPDATE
), judged AS (
    SELECT b.*, l.last_seq,
           (l.id IS NOT NULL AND l.dissolved_at IS NULL
            AND (b.sender_id IN (l.user1_id, l.user2_id)
                 OR (b.sender_id = '00000000-0000-0000-0000-000000000000'
                     AND b.type = 'NOTICE'))) AS allowed
    FROM batch AS b
    LEFT JOIN locked AS l ON l.id = b.couple_id
), fresh AS (
    SELECT j.*, j.last_seq + row_number() OVER (PARTITION BY j.couple_id ORDER BY j.ord) AS seq
    FROM judged AS j
    WHERE j.allowed
), bumped AS (
    UPDATE couples AS c
    SET last_seq = f.last_seq
    FROM (SELECT fresh.couple_id, max(fresh.seq) AS last_seq
          FROM fresh
          GROUP BY fresh.couple_id) AS f
    WHERE c.id = f.couple_id
), written AS (
    INSERT INTO messages (id, couple_id, sender_id, seq, type, content, image_url, is_read,
                          read_at, created_at, temp_id, reply_to_id, media_url, media)
    SELECT f.id, f.couple_id, f.sender_id, f.seq, f.type, f.content, f.image_url, false,
           NULL, f.created_at, f.temp_id, f.reply_to_id, f.media_url, f.media
    FROM fresh AS f
)
SELECT f.ord, f.seq FROM fresh AS f
UNION ALL
SELECT j.ord, NULL FROM judged AS j WHERE NOT j.allowed
"""
# v5 takes the batch as its eleven columns, NewMessage's fields in order, each in batch order.
_APPEND_CALL = (
    f"WITH {_BATCH}\nSELECT v.* FROM ieum_append_messages_v5("
    + ", ".join(
        f"ARRAY(SELECT b.{name} FROM batch AS b ORDER BY b.ord)" for name in NEW_MESSAGE_FIELDS
    )
    + ") AS v"
)
# APPEND_NEW broke a unique key, and stored nothing: a tempId of the batch was stored already
# (on a partitioned table the error names the partition's index, not the key: any unique
# violation goes to v5, which looks the tempIds up, and fails as well if it was not that).
_UNIQUE_VIOLATION = "23505"
# Columns of v5's rows after the message's own (migrations 0007, 0010).
_ORD = len(MESSAGE_FIELDS)
_OUTCOME = _ORD + 1


def batch_json(batch: Sequence[NewMessage]) -> str:
    """The parameter of both append statements: a JSON array of the batch's messages in
    order, each an object of :class:`NewMessage`'s fields (its media as their own JSON text,
    its time as PostgreSQL reads a ``timestamp``)."""
    return orjson.dumps(
        [
            {
                "id": m.id,
                "couple_id": m.couple_id,
                "sender_id": m.sender_id,
                "type": m.type,
                "content": m.content,
                "image_url": m.image_url,
                "temp_id": m.temp_id,
                "created_at": m.created_at,
                "reply_to_id": m.reply_to_id,
                "media_url": m.media_url,
                "media": m.media.to_json() if m.media is not None else None,
            }
            for m in batch
        ],
        default=_uuid_text,
    ).decode()


def _uuid_text(value: object) -> str:
    # orjson writes a uuid.UUID itself but not a subclass's, such as asyncpg's, which the ids
    # read through it are.
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


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

    try:
        rows = batch_json(sent)
    except orjson.JSONEncodeError as error:
        # A field that is not text (a lone surrogate): refused before it is sent, as the
        # driver refuses an argument it cannot encode.
        raise StoreError(f"append_messages failed: {type(error).__name__}: {error}") from error
    outcomes: list[Appended | None] = [None] * len(sent)
    # The second call is made after the except block, not in it: a compiled build compiles
    # this module, and a compiled coroutine must not await there (see ``ieum_chat._build``).
    numbered: list[Any] | None
    try:
        numbered = await pool.fetch("append_messages", APPEND_NEW, rows)
    except StoreError as error:
        if error.sqlstate != _UNIQUE_VIOLATION:
            raise
        numbered = None
    if numbered is not None:
        for index, seq in numbered:
            new = sent[index - 1]
            outcomes[index - 1] = (
                _not_a_member(new) if seq is None else Stored(new.numbered(seq), created=True)
            )
    else:
        for row in await pool.fetch("append_messages", _APPEND_CALL, rows):
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
