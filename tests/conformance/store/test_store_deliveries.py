"""Devices, push settings and what the delivery engine owes, on every database: a token
names one device, the cursor over a couple's stream moves once however many callers race,
a stream the consumer never saw starts after what predates the consumer, claimed deliveries
are leased, ordered queues give out one row at a time, and erasure takes all of it along."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from ieum_chat.store import Couple, Database, NewMessage, User
from ieum_chat.store.deliveries import Cursor, NewDelivery
from ieum_chat.store.devices import Device
from ieum_chat.store.records import ChangeKind, Event, Message, NewChange, Refused, Stored
from ieum_chat.store.schema import utcnow

CoupleFactory = Callable[[], Awaitable[tuple[Couple, User, User]]]
MessageFactory = Callable[..., NewMessage]


async def send(db: Database, new: NewMessage) -> Message:
    (result,) = await db.append_messages([dataclasses.replace(new, created_at=utcnow())])
    assert isinstance(result, Stored), result
    return result.message


def row(couple: Couple, seq: int, queue: str | None = None) -> NewDelivery:
    return NewDelivery(
        channel="webhook",
        payload=f'{{"seq": {seq}}}',
        created_at=utcnow(),
        queue=queue,
        couple_id=couple.id,
        seq=seq,
    )


async def test_devices_are_each_users_own_and_a_token_names_one_device(
    db: Database, make_couple: CoupleFactory
) -> None:
    _, a, b = await make_couple()
    phone, created = await db.put_device(Device(a.id, "phone", "fcm", "tok-1", locale="ko"))
    assert created
    assert (phone.platform, phone.token, phone.locale) == ("fcm", "tok-1", "ko")
    # the same device id for another user is that user's own device
    _, created = await db.put_device(Device(b.id, "phone", "apns", "tok-2"))
    assert created
    # an update keeps the device, changes its token
    updated, created = await db.put_device(Device(a.id, "phone", "fcm", "tok-3", locale="en"))
    assert not created
    assert (updated.token, updated.locale, updated.created_at) == ("tok-3", "en", phone.created_at)
    # b's phone now has a's token: it leaves a's device
    await db.put_device(Device(b.id, "phone", "fcm", "tok-3"))
    assert await db.devices_of([a.id]) == []
    (theirs,) = await db.devices_of([b.id])
    assert theirs.token == "tok-3"
    # a dead token removes the device only while it still has that token
    assert not await db.delete_device(b.id, "phone", token="tok-2")
    assert await db.delete_device(b.id, "phone", token="tok-3")
    assert not await db.delete_device(b.id, "phone")


async def test_push_preview_defaults_on_and_account_deletion_drops_devices(
    db: Database, make_couple: CoupleFactory
) -> None:
    _, a, b = await make_couple()
    assert await db.push_previews([a.id, b.id]) == {a.id: True, b.id: True}
    assert await db.set_push_preview(a.id, False)
    assert await db.push_previews([a.id]) == {a.id: False}
    assert not await db.set_push_preview(uuid.uuid4(), False)
    await db.put_device(Device(a.id, "web", "webpush", "https://push.example/1", "k", "s"))
    await db.delete_user(a.id)
    assert await db.devices_of([a.id]) == []
    assert not await db.set_push_preview(a.id, True)  # a deleted account keeps no setting


async def test_owed_reads_the_stream_past_the_cursor_and_advance_moves_it_once(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    since = await db.consumer_since("push")
    assert await db.consumer_since("push") == since
    couple, a, b = await make_couple()
    first = await send(db, new_message(couple, a, "one"))
    await send(db, new_message(couple, b, "two"))
    (edited,) = await db.apply_changes(
        [NewChange(ChangeKind.EDIT, couple.id, a.id, utcnow(), first.id, content="uno")]
    )
    assert not isinstance(edited, Refused)
    owed = await db.owed("push", couple.id, since)
    assert owed.cursor == Cursor(0)
    assert owed.last_seq == 3
    assert [item.seq for item in owed.items] == [1, 2, 3]
    assert isinstance(owed.items[2], Event)
    assert owed.couple is not None
    assert owed.couple.id == couple.id
    # two callers race from the same cursor: one inserts its rows, the other nothing
    wins = await asyncio.gather(
        db.advance("push", couple.id, Cursor(0), Cursor(3), [row(couple, 1)]),
        db.advance("push", couple.id, Cursor(0), Cursor(3), [row(couple, 1)]),
    )
    assert sorted(wins) == [False, True]
    assert await db.delivery_backlog() == {"webhook": 1}
    again = await db.owed("push", couple.id, since)
    assert (again.cursor, again.items) == (Cursor(3), [])
    # another consumer has a cursor of its own
    assert (await db.owed("webhook", couple.id, since)).cursor == Cursor(0)
    # what deciding pushes and writing webhooks needs comes with the slice
    await db.put_device(Device(b.id, "phone", "fcm", "tok-ctx"))
    pushed = (await db.owed("push2", couple.id, since, for_push=True)).push
    assert pushed is not None
    assert [d.device_id for d in pushed.devices] == ["phone"]
    assert pushed.unread == {b.id: 1}  # a's "one" waits for b
    assert pushed.previews == {b.id: True}
    assert set(pushed.names) == {a.id, b.id}
    hooked = (await db.owed("hook2", couple.id, since, for_webhook=True)).webhook
    assert hooked is not None
    assert set(hooked.senders) == {a.id, b.id}
    assert hooked.quoted == {}
    # limit: at most that many seqs at once
    assert [i.seq for i in (await db.owed("other", couple.id, since, limit=2)).items] == [1, 2]


async def test_a_stream_the_consumer_never_saw_starts_after_what_predates_it(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, _ = await make_couple()
    (old,) = await db.append_messages([new_message(couple, a, "old")])  # 2024: before since
    assert isinstance(old, Stored)
    since = await db.consumer_since("late")
    await send(db, new_message(couple, a, "new"))
    owed = await db.owed("late", couple.id, since)
    assert owed.cursor == Cursor(1)
    assert [item.seq for item in owed.items] == [2]


async def test_claims_lease_and_ordered_queues_give_one_row_at_a_time(
    db: Database, make_couple: CoupleFactory
) -> None:
    since = await db.consumer_since("webhook")
    couple, _, _ = await make_couple()
    queue = str(couple.id)
    await db.owed("webhook", couple.id, since)
    rows = [row(couple, 1, queue), row(couple, 2, queue), row(couple, 3)]
    assert await db.advance("webhook", couple.id, Cursor(0), Cursor(3), rows)
    lease = utcnow() + timedelta(seconds=30)
    claimed = await db.claim("webhook", lease, limit=10, in_order=True)
    # the queue's head, and the row of no queue; not the queue's second row
    assert sorted(d.seq or 0 for d in claimed) == [1, 3]
    assert all(d.attempts == 1 for d in claimed)
    assert await db.claim("webhook", lease, limit=10, in_order=True) == []  # leased
    head = next(d for d in claimed if d.seq == 1)
    await db.retry_at(head.id, utcnow() - timedelta(seconds=1))
    (retried,) = await db.claim("webhook", lease, limit=10, in_order=True)
    assert (retried.id, retried.attempts) == (head.id, 2)
    assert await db.finish([head.id]) == 1
    (second,) = await db.claim("webhook", lease, limit=10, in_order=True)
    assert second.seq == 2
    # unordered claims take any due row
    await db.retry_at(second.id, utcnow() - timedelta(seconds=1))
    assert [d.seq for d in await db.claim("webhook", lease, limit=10)] == [2]


async def test_owing_streams_lists_what_is_behind_and_unclosed(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    since = await db.consumer_since("webhook")
    quiet, _, _ = await make_couple()
    busy, a, _ = await make_couple()
    await send(db, new_message(busy, a, "hi"))
    couples, users = await db.owing_streams("webhook", since, with_users=True)
    assert (couples, users) == ([busy.id], [])
    owed = await db.owed("webhook", busy.id, since)
    assert await db.advance("webhook", busy.id, owed.cursor, Cursor(owed.last_seq), [])
    assert await db.owing_streams("webhook", since, with_users=True) == ([], [])
    # a dissolution is owed until the cursor is closed; a deleted user until told
    await db.dissolve_couple(quiet.id)
    _, c, _ = await make_couple()
    await db.delete_user(c.id)
    couples, users = await db.owing_streams("webhook", since, with_users=True)
    assert set(couples) >= {quiet.id}
    assert users == [c.id]
    assert (await db.owing_streams("webhook", since))[1] == []  # users only when asked
    told = await db.owed_user("webhook", c.id, since)
    assert told.cursor == Cursor(0)
    assert told.deleted_at is not None
    assert await db.advance("webhook", c.id, told.cursor, Cursor(0, closed=True), [])
    assert (await db.owing_streams("webhook", since, with_users=True))[1] == []


async def test_erasure_takes_cursors_and_deliveries_along(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    since = await db.consumer_since("webhook")
    couple, a, b = await make_couple()
    await send(db, new_message(couple, a, "hi"))
    await db.put_device(Device(b.id, "phone", "fcm", "tok"))
    owed = await db.owed("webhook", couple.id, since)
    assert await db.advance("webhook", couple.id, owed.cursor, Cursor(1), [row(couple, 1)])
    await db.delete_user(a.id)
    await db.delete_user(b.id)
    later = utcnow() + timedelta(days=1)
    assert await db.erase_couple(couple.id, later)
    assert await db.erase_users((a.id, b.id), later) == 2
    assert await db.delivery_backlog() == {}
    gone = await db.owed("webhook", couple.id, since)
    assert (gone.couple, gone.items) == (None, [])
    assert await db.owing_streams("webhook", since, with_users=True) == ([], [])
