"""What the delivery engine owes: cursors over the committed streams, and the deliveries
(pushes, webhooks) not yet accepted by their receiver.

Nothing here is written on the send path. A consumer (``push``, ``webhook``) reads a stream
from its cursor (:meth:`DeliveriesStore.owed`), decides what it owes, and moves the cursor
by compare-and-set in the transaction that inserts those deliveries
(:meth:`DeliveriesStore.advance`): when two nodes race over one stream, one transaction wins
and the other inserts nothing, so each delivery is owed once. A stream is a couple's
(messages and events by seq; then its end, ``couple.dissolved``) or a deleted user's (one
event, ``user.erased``), both keyed by their id.

A delivery row lives until its receiver accepted it. :meth:`DeliveriesStore.claim` takes due
rows by moving ``due_at`` past the request's timeout (the lease: a node that dies leaves its
rows to come due again); ``in_order`` claims only the oldest row of each ``queue``, so one
couple's webhooks go out one at a time, in seq order, on any number of nodes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ieum_chat.store.couples import COUPLE_COLUMNS, couple_from_row
from ieum_chat.store.devices import Device, devices_txn, previews_txn
from ieum_chat.store.messages import MESSAGE_COLUMNS, unread_count_txn
from ieum_chat.store.pool import SQLBaseStore
from ieum_chat.store.records import Couple, Event, Message, User, message_from_row
from ieum_chat.store.schema import (
    couples,
    deliveries,
    delivery_consumers,
    delivery_cursors,
    message_events,
    messages,
    users,
    utcnow,
)
from ieum_chat.store.stream import EVENT_COLUMNS, event_from_row, messages_by_id_txn
from ieum_chat.store.users import select_users_txn

__all__ = [
    "Cursor",
    "DeliveriesStore",
    "Delivery",
    "NewDelivery",
    "OwedStream",
    "OwedUser",
    "PushContext",
    "WebhookContext",
]

_d = deliveries
_c = delivery_cursors


@dataclass(frozen=True, slots=True)
class Cursor:
    seq: int
    closed: bool = False


@dataclass(frozen=True, slots=True)
class NewDelivery:
    channel: str  # a push platform ("fcm", "apns", "webpush") or "webhook"
    payload: str  # JSON: what the sender needs besides the device row
    created_at: datetime  # when the change it tells of was committed (the lag's start)
    queue: str | None = None  # deliveries of one queue go out one at a time, in id order
    couple_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    device_id: str | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    channel: str
    payload: str
    created_at: datetime
    attempts: int  # including the one this claim starts
    queue: str | None
    couple_id: uuid.UUID | None
    user_id: uuid.UUID | None
    device_id: str | None
    seq: int | None


@dataclass(frozen=True, slots=True)
class PushContext:
    """What deciding a slice's pushes needs, read with it: the members' devices, whether
    each shows previews, the senders' names, and each member's unread count."""

    devices: list[Device]
    previews: dict[uuid.UUID, bool]
    names: dict[uuid.UUID, str]
    unread: dict[uuid.UUID, int]


@dataclass(frozen=True, slots=True)
class WebhookContext:
    """What a slice's webhooks show beside its rows, read with it: the messages' senders and
    the messages they answer."""

    senders: dict[uuid.UUID, User]
    quoted: dict[uuid.UUID, Message]


@dataclass(frozen=True, slots=True)
class OwedStream:
    """A couple's stream past a consumer's cursor: ``items`` up to ``last_seq`` (at most the
    limit asked for; ``head_seq`` is the stream's last), the couple as it is now (None:
    erased, and nothing is owed)."""

    cursor: Cursor
    couple: Couple | None
    last_seq: int
    items: list[Message | Event]
    head_seq: int = 0
    push: PushContext | None = None  # with ``for_push``, when the slice has messages
    webhook: WebhookContext | None = None  # with ``for_webhook``, when it has messages

    @property
    def complete(self) -> bool:
        """Whether ``items`` reach the end of the stream."""
        return self.last_seq >= self.head_seq


@dataclass(frozen=True, slots=True)
class OwedUser:
    cursor: Cursor
    deleted_at: datetime | None  # None: no such user, or not deleted


_COLUMNS = (
    _d.c.id,
    _d.c.channel,
    _d.c.payload,
    _d.c.created_at,
    _d.c.attempts,
    _d.c.queue,
    _d.c.couple_id,
    _d.c.user_id,
    _d.c.device_id,
    _d.c.seq,
)


def _since_txn(conn: Connection, name: str, now: datetime) -> datetime:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(
        dialect.insert(delivery_consumers).values(name=name, since=now).on_conflict_do_nothing()
    )
    since: datetime = conn.execute(
        select(delivery_consumers.c.since).where(delivery_consumers.c.name == name)
    ).scalar_one()
    return since


def _cursor_txn(conn: Connection, consumer: str, stream_id: uuid.UUID, start: Cursor) -> Cursor:
    """The stream's cursor, created at ``start`` if it has none."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(
        dialect.insert(_c)
        .values(consumer=consumer, stream_id=stream_id, seq=start.seq, closed=start.closed)
        .on_conflict_do_nothing()
    )
    row = conn.execute(
        select(_c.c.seq, _c.c.closed).where(_c.c.consumer == consumer, _c.c.stream_id == stream_id)
    ).one()
    return Cursor(int(row.seq), bool(row.closed))


def _read_cursor(conn: Connection, consumer: str, stream_id: uuid.UUID) -> Cursor | None:
    row = conn.execute(
        select(_c.c.seq, _c.c.closed).where(_c.c.consumer == consumer, _c.c.stream_id == stream_id)
    ).first()
    return None if row is None else Cursor(int(row.seq), bool(row.closed))


def _push_context(conn: Connection, couple: Couple, sent: list[Message]) -> PushContext:
    found = devices_txn(conn, couple.members)
    targeted = {d.user_id for d in found}
    if not found:
        return PushContext([], {}, {}, {})
    senders = {m.sender_id for m in sent}
    names = {
        row.id: row.name
        for row in conn.execute(select(users.c.id, users.c.name).where(users.c.id.in_(senders)))
    }
    return PushContext(
        found,
        previews_txn(conn, targeted),
        names,
        {user: unread_count_txn(conn, couple.id, user) for user in targeted},
    )


def _owed_txn(
    conn: Connection,
    consumer: str,
    couple_id: uuid.UUID,
    since: datetime,
    limit: int,
    *,
    for_push: bool = False,
    for_webhook: bool = False,
) -> OwedStream:
    row = conn.execute(
        select(*COUPLE_COLUMNS, couples.c.last_seq).where(couples.c.id == couple_id)
    ).first()
    if row is None:  # erased (or never was): nothing owed, no cursor left behind
        return OwedStream(Cursor(0), None, 0, [])
    couple = couple_from_row(row)
    last_seq = int(row.last_seq)
    cursor = _read_cursor(conn, consumer, couple_id)
    if cursor is None:
        # A stream this consumer never saw: it starts after what was older than the consumer.
        before = [
            conn.execute(
                select(func.max(t.c.seq)).where(t.c.couple_id == couple_id, t.c.created_at < since)
            ).scalar()
            for t in (messages, message_events)
        ]
        start = max([0, *(int(b) for b in before if b is not None)])
        closed = (
            couple is not None and couple.dissolved_at is not None and couple.dissolved_at < since
        )
        cursor = _cursor_txn(conn, consumer, couple_id, Cursor(start, closed))
    items: list[Message | Event] = []
    head = last_seq
    if last_seq > cursor.seq:
        upto = min(last_seq, cursor.seq + limit)
        items.extend(
            message_from_row(r)
            for r in conn.execute(
                select(*MESSAGE_COLUMNS).where(
                    messages.c.couple_id == couple_id,
                    messages.c.seq > cursor.seq,
                    messages.c.seq <= upto,
                )
            )
        )
        items.extend(
            event_from_row(r)
            for r in conn.execute(
                select(*EVENT_COLUMNS).where(
                    message_events.c.couple_id == couple_id,
                    message_events.c.seq > cursor.seq,
                    message_events.c.seq <= upto,
                )
            )
        )
        items.sort(key=lambda item: item.seq)
        last_seq = upto
    else:
        last_seq = cursor.seq
    push = webhook = None
    sent = [i for i in items if isinstance(i, Message) and not i.unsent]
    if for_push and sent and couple.active:
        push = _push_context(conn, couple, sent)
    written = [i for i in items if isinstance(i, Message)]
    if for_webhook and written:
        replied = [m.reply_to_id for m in written if m.reply_to_id is not None]
        webhook = WebhookContext(
            select_users_txn(conn, {m.sender_id for m in written}),
            {m.id: m for m in messages_by_id_txn(conn, replied)} if replied else {},
        )
    return OwedStream(cursor, couple, last_seq, items, head, push, webhook)


def _owed_user_txn(
    conn: Connection, consumer: str, user_id: uuid.UUID, since: datetime
) -> OwedUser:
    deleted_at = conn.execute(select(users.c.deleted_at).where(users.c.id == user_id)).scalar()
    cursor = _read_cursor(conn, consumer, user_id)
    if cursor is None:
        closed = deleted_at is not None and deleted_at < since
        cursor = _cursor_txn(conn, consumer, user_id, Cursor(0, closed))
    return OwedUser(cursor, deleted_at)


def _advance_txn(
    conn: Connection,
    consumer: str,
    stream_id: uuid.UUID,
    *,
    old: Cursor,
    new: Cursor,
    rows: Sequence[NewDelivery],
    now: datetime,
) -> bool:
    moved = conn.execute(
        update(_c)
        .where(
            _c.c.consumer == consumer,
            _c.c.stream_id == stream_id,
            _c.c.seq == old.seq,
            _c.c.closed == old.closed,
        )
        .values(seq=new.seq, closed=new.closed)
    ).rowcount
    if not moved:
        return False
    if rows:
        conn.execute(
            deliveries.insert(),
            [
                {
                    "channel": r.channel,
                    "queue": r.queue,
                    "couple_id": r.couple_id,
                    "user_id": r.user_id,
                    "device_id": r.device_id,
                    "seq": r.seq,
                    "payload": r.payload,
                    "attempts": 0,
                    "due_at": now,
                    "created_at": r.created_at,
                }
                for r in rows
            ],
        )
    return True


def _owing_txn(
    conn: Connection, consumer: str, since: datetime, limit: int, with_users: bool
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    cursor = and_(_c.c.consumer == consumer, _c.c.stream_id == couples.c.id)
    behind = or_(
        _c.c.seq.is_(None) & (couples.c.last_seq > 0),
        couples.c.last_seq > _c.c.seq,
    )
    if with_users:
        behind = or_(
            behind,
            couples.c.dissolved_at.is_not(None)
            & (couples.c.dissolved_at >= since)
            & ~func.coalesce(_c.c.closed, False),
        )
    couple_ids = list(
        conn.execute(
            select(couples.c.id)
            .select_from(couples.outerjoin(_c, cursor))
            .where(behind)
            .limit(limit)
        ).scalars()
    )
    user_ids: list[uuid.UUID] = []
    if with_users:
        seen = select(_c.c.stream_id).where(
            _c.c.consumer == consumer, _c.c.stream_id == users.c.id, _c.c.closed
        )
        user_ids = list(
            conn.execute(
                select(users.c.id).where(users.c.deleted_at >= since, ~exists(seen)).limit(limit)
            ).scalars()
        )
    return couple_ids, user_ids


def _claim_txn(
    conn: Connection,
    channel: str,
    *,
    now: datetime,
    lease_until: datetime,
    limit: int,
    in_order: bool,
) -> list[Delivery]:
    pick = select(_d.c.id).where(_d.c.channel == channel, _d.c.due_at <= now)
    if in_order:
        earlier = deliveries.alias("earlier")
        first = ~exists(
            select(earlier.c.id).where(earlier.c.queue == _d.c.queue, earlier.c.id < _d.c.id)
        )
        pick = pick.where(first)
    pick = pick.order_by(_d.c.due_at, _d.c.id).limit(limit).with_for_update(skip_locked=True)
    ids = list(conn.execute(pick).scalars())
    if not ids:
        return []
    conn.execute(
        update(_d).where(_d.c.id.in_(ids)).values(due_at=lease_until, attempts=_d.c.attempts + 1)
    )
    rows = conn.execute(select(*_COLUMNS).where(_d.c.id.in_(ids)).order_by(_d.c.id))
    return [
        Delivery(
            r.id,
            r.channel,
            r.payload,
            r.created_at,
            r.attempts,
            r.queue,
            r.couple_id,
            r.user_id,
            r.device_id,
            r.seq,
        )
        for r in rows
    ]


def _finish_txn(conn: Connection, ids: Sequence[int]) -> int:
    return int(conn.execute(delete(_d).where(_d.c.id.in_(list(ids)))).rowcount)


def _retry_txn(conn: Connection, delivery_id: int, due_at: datetime) -> None:
    conn.execute(update(_d).where(_d.c.id == delivery_id).values(due_at=due_at))


def _backlog_txn(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(_d.c.channel, func.count()).group_by(_d.c.channel))
    return {row[0]: int(row[1]) for row in rows}


class DeliveriesStore(SQLBaseStore):
    async def consumer_since(self, name: str) -> datetime:
        """When ``name`` first ran (now, if this is the first time)."""
        return await self.db_pool.write_txn("consumer_since", _since_txn, name, utcnow())

    async def owed(
        self,
        consumer: str,
        couple_id: uuid.UUID,
        since: datetime,
        *,
        limit: int = 200,
        for_push: bool = False,
        for_webhook: bool = False,
    ) -> OwedStream:
        """The couple's stream past ``consumer``'s cursor (created if missing), at most
        ``limit`` seqs of it; ``for_push``/``for_webhook``: with what deciding its pushes, or
        writing its webhooks, needs, read in the same transaction."""
        return await self.db_pool.write_txn(
            "owed",
            _owed_txn,
            consumer,
            couple_id,
            since,
            limit,
            for_push=for_push,
            for_webhook=for_webhook,
        )

    async def owed_user(self, consumer: str, user_id: uuid.UUID, since: datetime) -> OwedUser:
        return await self.db_pool.write_txn("owed_user", _owed_user_txn, consumer, user_id, since)

    async def advance(
        self,
        consumer: str,
        stream_id: uuid.UUID,
        old: Cursor,
        new: Cursor,
        rows: Sequence[NewDelivery],
    ) -> bool:
        """Move the cursor from ``old`` to ``new`` and owe ``rows``, in one transaction;
        False (nothing written) when the cursor is not at ``old`` any more."""
        return await self.db_pool.write_txn(
            "advance_delivery",
            _advance_txn,
            consumer,
            stream_id,
            old=old,
            new=new,
            rows=rows,
            now=utcnow(),
        )

    async def owing_streams(
        self, consumer: str, since: datetime, *, limit: int = 500, with_users: bool = False
    ) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
        """Couples whose stream is past ``consumer``'s cursor (with ``with_users``: or whose
        end it has not told), and deleted users it has not told of (with ``with_users``)."""
        return await self.db_pool.read_txn(
            "owing_streams", _owing_txn, consumer, since, limit, with_users
        )

    async def claim(
        self, channel: str, lease_until: datetime, *, limit: int, in_order: bool = False
    ) -> list[Delivery]:
        """Take up to ``limit`` due deliveries of ``channel`` until ``lease_until``."""
        return await self.db_pool.write_txn(
            "claim_deliveries",
            _claim_txn,
            channel,
            now=utcnow(),
            lease_until=lease_until,
            limit=limit,
            in_order=in_order,
        )

    async def finish(self, ids: Sequence[int]) -> int:
        """Forget these deliveries (accepted, or never to be sent)."""
        if not ids:
            return 0
        return await self.db_pool.write_txn("finish_deliveries", _finish_txn, ids)

    async def retry_at(self, delivery_id: int, due_at: datetime) -> None:
        await self.db_pool.write_txn("retry_delivery", _retry_txn, delivery_id, due_at)

    async def delivery_backlog(self) -> dict[str, int]:
        """Deliveries not yet accepted, by channel."""
        return await self.db_pool.read_txn("delivery_backlog", _backlog_txn)
