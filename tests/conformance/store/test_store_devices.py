"""Removing a device takes the pushes still owed to it along, on every database: one the
user removed, and one whose token another device registered since (those pushes carry the
token, and would reach its new owner)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ieum_chat.store import Couple, Database, User
from ieum_chat.store.deliveries import Cursor, NewDelivery
from ieum_chat.store.devices import Device
from ieum_chat.store.schema import utcnow

CoupleFactory = Callable[[], Awaitable[tuple[Couple, User, User]]]


def push(couple: Couple, user: User, device_id: str, seq: int) -> NewDelivery:
    return NewDelivery(
        channel="fcm",
        payload=f'{{"seq": {seq}}}',
        created_at=utcnow(),
        couple_id=couple.id,
        user_id=user.id,
        device_id=device_id,
        seq=seq,
    )


async def owe(db: Database, couple: Couple, rows: list[NewDelivery]) -> None:
    since = await db.consumer_since("push")
    owed = await db.owed("push", couple.id, since)
    assert await db.advance("push", couple.id, owed.cursor, Cursor(len(rows)), rows)


async def test_deleting_a_device_drops_what_is_owed_to_it_alone(
    db: Database, make_couple: CoupleFactory
) -> None:
    couple, a, b = await make_couple()
    await db.put_device(Device(a.id, "phone", "fcm", "tok-a"))
    await db.put_device(Device(a.id, "tablet", "fcm", "tok-t"))
    await db.put_device(Device(b.id, "phone", "fcm", "tok-b"))
    await owe(
        db,
        couple,
        [push(couple, a, "phone", 1), push(couple, a, "tablet", 2), push(couple, b, "phone", 3)],
    )
    assert await db.delete_device(a.id, "phone")
    assert not await db.delete_device(a.id, "phone")
    claimed = await db.claim("fcm", utcnow(), limit=10)
    assert sorted((d.user_id, d.device_id) for d in claimed) == sorted(
        [(a.id, "tablet"), (b.id, "phone")]
    )


async def test_a_token_taken_by_another_device_takes_its_pushes_away(
    db: Database, make_couple: CoupleFactory
) -> None:
    couple, a, b = await make_couple()
    await db.put_device(Device(a.id, "phone", "fcm", "shared"))
    await owe(db, couple, [push(couple, a, "phone", 1), push(couple, b, "phone", 2)])
    await db.put_device(Device(b.id, "phone", "fcm", "shared"))
    assert await db.devices_of([a.id]) == []
    (left,) = await db.claim("fcm", utcnow(), limit=10)
    assert (left.user_id, left.device_id) == (b.id, "phone")
