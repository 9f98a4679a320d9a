"""A couple's stream as one member reads it: messages as they are now and the events of
their changes, merged by seq (:meth:`StreamStore.read_stream`), the hides a resuming device has
not seen (:meth:`StreamStore.hides_since`), the stream's position, messages by id; and the row
shapes of events and hides, which ``changes`` writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from functools import partial

import orjson
from sqlalchemy import and_, select, tuple_
from sqlalchemy.engine import Connection

from ieum_chat.store.messages import MESSAGE_COLUMNS, chunks
from ieum_chat.store.pool import AnyRow, SQLBaseStore
from ieum_chat.store.records import ChangeKind, Event, Hide, Message, message_from_row
from ieum_chat.store.routing import StreamMark, stream_position_txn
from ieum_chat.store.schema import message_events, message_hides, messages

__all__ = [
    "EVENT_COLUMNS",
    "HIDE_COLUMNS",
    "StreamItem",
    "StreamStore",
    "event_from_row",
    "hide_from_row",
    "messages_by_id_txn",
]

# One entry of a member's stream: a message as it is now, an event, or (for a message the
# member hid) the hide, at the message's seq.
StreamItem = Message | Event | Hide

EVENT_COLUMNS = (
    message_events.c.couple_id,
    message_events.c.seq,
    message_events.c.kind,
    message_events.c.actor_id,
    message_events.c.message_id,
    message_events.c.temp_id,
    message_events.c.created_at,
    message_events.c.data,
)
HIDE_COLUMNS = (
    message_hides.c.user_id,
    message_hides.c.message_id,
    message_hides.c.couple_id,
    message_hides.c.position,
    message_hides.c.created_at,
)


def event_from_row(row: AnyRow) -> Event:
    data = orjson.loads(row.data) if row.data else {}
    return Event(
        couple_id=row.couple_id,
        seq=row.seq,
        kind=ChangeKind(row.kind),
        actor_id=row.actor_id,
        message_id=row.message_id,
        temp_id=row.temp_id,
        created_at=row.created_at,
        data=data,
    )


def hide_from_row(row: AnyRow) -> Hide:
    return Hide(row.user_id, row.message_id, row.couple_id, row.position, row.created_at)


def _read_stream_txn(
    conn: Connection, couple_id: uuid.UUID, viewer_id: uuid.UUID, after_seq: int, limit: int
) -> list[StreamItem]:
    message_rows = conn.execute(
        select(*MESSAGE_COLUMNS, message_hides.c.created_at.label("hidden_at"))
        .outerjoin(
            message_hides,
            and_(message_hides.c.user_id == viewer_id, message_hides.c.message_id == messages.c.id),
        )
        .where(messages.c.couple_id == couple_id, messages.c.seq > after_seq)
        .order_by(messages.c.seq)
        .limit(limit)
    )
    items: list[tuple[int, StreamItem]] = []
    for row in message_rows:
        message = message_from_row(row)
        if row.hidden_at is not None:
            hide = Hide(viewer_id, message.id, couple_id, message.seq, row.hidden_at)
            items.append((message.seq, hide))
        else:
            items.append((message.seq, message))
    event_rows = conn.execute(
        select(*EVENT_COLUMNS)
        .where(message_events.c.couple_id == couple_id, message_events.c.seq > after_seq)
        .order_by(message_events.c.seq)
        .limit(limit)
    )
    items.extend((row.seq, event_from_row(row)) for row in event_rows)
    items.sort(key=lambda item: item[0])
    return [item for _, item in items[:limit]]


def _item_seq(item: StreamItem) -> int:
    return item.position if isinstance(item, Hide) else item.seq


def _reaches(after_seq: int, limit: int, mark: StreamMark) -> Callable[[list[StreamItem]], bool]:
    """Whether a page of the stream after ``after_seq`` is whole up to ``mark``: full, or
    reaching its last seq (every seq up to it is a message, an event or a hide)."""

    def check(items: list[StreamItem]) -> bool:
        last = _item_seq(items[-1]) if items else after_seq
        return len(items) >= limit or last >= mark.last_seq

    return check


def _hides_since_txn(  # noqa: PLR0917 - a transaction function takes its arguments positionally
    conn: Connection,
    couple_id: uuid.UUID,
    user_id: uuid.UUID,
    after: tuple[int, uuid.UUID] | None,
    position: int,
    limit: int,
) -> list[Hide]:
    query = select(*HIDE_COLUMNS).where(
        message_hides.c.couple_id == couple_id,
        message_hides.c.user_id == user_id,
        message_hides.c.position >= position,
    )
    if after is not None:
        query = query.where(
            tuple_(message_hides.c.position, message_hides.c.message_id) > tuple_(*after)
        )
    query = query.order_by(message_hides.c.position, message_hides.c.message_id).limit(limit)
    return [hide_from_row(row) for row in conn.execute(query)]


def messages_by_id_txn(conn: Connection, ids: Sequence[uuid.UUID]) -> list[Message]:
    found: list[Message] = []
    for chunk in chunks(list(ids)):
        query = select(*MESSAGE_COLUMNS).where(messages.c.id.in_(chunk))
        found.extend(message_from_row(row) for row in conn.execute(query))
    return found


class StreamStore(SQLBaseStore):
    async def read_stream(
        self,
        couple_id: uuid.UUID,
        viewer_id: uuid.UUID,
        *,
        after_seq: int,
        limit: int,
    ) -> tuple[StreamMark, list[StreamItem]]:
        """Up to ``limit`` entries of the couple's stream with ``seq > after_seq``, ascending,
        as ``viewer_id`` sees them: messages as they are now, events, and for each message
        the viewer hid, its :class:`Hide` in its place (the seq is the message's); with the
        mark read before them (``Reads.marked``). The read may be answered by the read
        replica, if it holds everything committed at the mark and returns a page that is
        whole up to it (``routing``)."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        read = partial(
            _read_stream_txn,
            couple_id=couple_id,
            viewer_id=viewer_id,
            after_seq=after_seq,
            limit=limit,
        )
        return await self.reads.marked(
            "read_stream", couple_id, viewer_id, read, lambda mark: _reaches(after_seq, limit, mark)
        )

    async def hides_since(
        self,
        couple_id: uuid.UUID,
        user_id: uuid.UUID,
        position: int,
        *,
        after: tuple[int, uuid.UUID] | None = None,
        limit: int = 100,
    ) -> list[Hide]:
        """The user's hides in this couple made at ``position`` or later, by (position,
        message id), after the cursor ``after`` (the last one returned)."""
        return await self.db_pool.read_txn(
            "hides_since", _hides_since_txn, couple_id, user_id, after, position, limit
        )

    async def stream_position(self, couple_id: uuid.UUID) -> int:
        """The last seq handed out in the couple's stream (a message's or a change's); 0 for
        none, or no such couple."""
        return await self.db_pool.read_txn("stream_position", stream_position_txn, couple_id)

    async def messages_by_id(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Message]:
        """The stored messages with these ids (any couple; the caller checks)."""
        if not ids:
            return {}
        found = await self.db_pool.read_txn("messages_by_id", messages_by_id_txn, ids)
        return {m.id: m for m in found}
