"""Read marks: only the partner's messages, only what changed, idempotent; unread counts."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone

import pytest
from tests.support.appends import all_stored

from ieum_chat.store import Couple, Database, Message, NewMessage, User
from ieum_chat.store.records import ChangeKind, NewChange

CoupleFactory = Callable[[], Awaitable[tuple[Couple, User, User]]]
MessageFactory = Callable[..., NewMessage]
READ_AT = datetime(2024, 1, 11, 10, 15)


async def _conversation(
    db: Database, couple: Couple, a: User, b: User, new_message: MessageFactory
) -> list[Message]:
    """seq 1..6, sent by a, a, b, a, b, a."""
    senders = [a, a, b, a, b, a]
    stored = all_stored(
        await db.append_messages([new_message(couple, s, f"m{i}") for i, s in enumerate(senders)])
    )
    return [s.message for s in stored]


async def test_mark_read_by_ids(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    m = await _conversation(db, couple, a, b, new_message)
    assert await db.unread_count(couple.id, b.id) == 4
    assert await db.unread_count(couple.id, a.id) == 2
    changed = await db.mark_read(
        couple.id, b.id, message_ids=[m[3].id, m[0].id, m[2].id], read_at=READ_AT
    )
    # b's own message (seq 3) is not b's to mark; the rest come back in seq order, as now stored
    assert [x.seq for x in changed] == [1, 4]
    assert all(x.is_read and x.read_at == READ_AT for x in changed)
    assert changed[0] == _read(m[0])
    assert await db.unread_count(couple.id, b.id) == 2
    assert await db.unread_count(couple.id, a.id) == 2
    stored = {x.seq: x for x in await db.get_messages(couple.id)}
    assert stored[1].is_read
    assert stored[4].is_read
    assert not stored[3].is_read
    assert not stored[2].is_read


def _read(message: Message) -> Message:
    return dataclasses.replace(message, is_read=True, read_at=READ_AT)


async def test_mark_read_up_to_seq(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    await _conversation(db, couple, a, b, new_message)
    changed = await db.mark_read(couple.id, b.id, up_to_seq=4, read_at=READ_AT)
    assert [x.seq for x in changed] == [1, 2, 4]
    assert await db.unread_count(couple.id, b.id) == 1
    later = READ_AT + timedelta(minutes=1)
    rest = await db.mark_read(couple.id, b.id, up_to_seq=100, read_at=later)
    assert [(x.seq, x.read_at) for x in rest] == [(6, later)]
    assert await db.unread_count(couple.id, b.id) == 0
    mine = await db.mark_read(couple.id, a.id, up_to_seq=6, read_at=later)
    assert [x.seq for x in mine] == [3, 5]
    assert await db.unread_count(couple.id, a.id) == 0


async def test_mark_read_is_idempotent(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    m = await _conversation(db, couple, a, b, new_message)
    ids = [x.id for x in m]
    assert len(await db.mark_read(couple.id, b.id, message_ids=ids, read_at=READ_AT)) == 4
    later = READ_AT + timedelta(hours=1)
    assert await db.mark_read(couple.id, b.id, message_ids=ids, read_at=later) == []
    assert await db.mark_read(couple.id, b.id, up_to_seq=6, read_at=later) == []
    # the first read time stands
    assert {x.read_at for x in await db.get_messages(couple.id) if x.sender_id == a.id} == {READ_AT}


async def test_concurrent_marks_report_each_change_once(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    all_stored(await db.append_messages([new_message(couple, a) for _ in range(30)]))
    results = await asyncio.gather(
        *(db.mark_read(couple.id, b.id, up_to_seq=n, read_at=READ_AT) for n in range(1, 31))
    )
    assert sorted(x.seq for changed in results for x in changed) == list(range(1, 31))


async def test_mark_read_ignores_other_couples_and_strangers(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    other, c, _ = await make_couple()
    [theirs] = all_stored(await db.append_messages([new_message(other, c)]))
    m = await _conversation(db, couple, a, b, new_message)
    changed = await db.mark_read(
        couple.id, b.id, message_ids=[theirs.message.id, uuid.uuid4(), m[0].id], read_at=READ_AT
    )
    assert [x.id for x in changed] == [m[0].id]
    assert await db.unread_count(other.id, b.id) == 0  # not b's couple: nothing to read
    assert await db.mark_read(other.id, b.id, up_to_seq=10, read_at=READ_AT) == []
    assert await db.unread_count(other.id, _partner(other, c)) == 1
    # a user who is not a member changes nothing
    stranger = await db.create_user("stranger")
    assert await db.mark_read(couple.id, stranger.id, up_to_seq=10, read_at=READ_AT) == []
    assert await db.unread_count(couple.id, stranger.id) == 0
    assert await db.unread_count(couple.id, b.id) == 3


def _partner(couple: Couple, user: User) -> uuid.UUID:
    return couple.partner_of(user.id)


async def test_mark_read_arguments(db: Database, make_couple: CoupleFactory) -> None:
    couple, _, b = await make_couple()
    with pytest.raises(ValueError, match="exactly one"):
        await db.mark_read(couple.id, b.id, read_at=READ_AT)
    with pytest.raises(ValueError, match="exactly one"):
        await db.mark_read(couple.id, b.id, message_ids=[], up_to_seq=1, read_at=READ_AT)
    assert await db.mark_read(couple.id, b.id, message_ids=[], read_at=READ_AT) == []


async def test_read_at_with_offset_is_stored_as_utc(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    all_stored(await db.append_messages([new_message(couple, a)]))
    kst = timezone(timedelta(hours=9))
    [changed] = await db.mark_read(
        couple.id, b.id, up_to_seq=1, read_at=datetime(2024, 1, 11, 19, 15, tzinfo=kst)
    )
    assert changed.read_at == READ_AT
    assert (await db.get_messages(couple.id))[0].read_at == READ_AT


async def test_unread_count_of_empty_couple(db: Database, make_couple: CoupleFactory) -> None:
    couple, a, b = await make_couple()
    assert await db.unread_count(couple.id, a.id) == 0
    assert await db.unread_count(couple.id, b.id) == 0
    assert await db.unread_count(uuid.uuid4(), a.id) == 0


async def test_the_room_view_reads_the_couple_unread_count_position_and_last_message(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    empty = await db.room_view(b.id)
    assert empty is not None
    assert (empty.couple, empty.unread, empty.position, empty.last) == (couple, 0, 0, None)
    m = await _conversation(db, couple, a, b, new_message)
    await db.mark_read(couple.id, b.id, up_to_seq=2, read_at=READ_AT)  # an event: seq 7
    room = await db.room_view(b.id)
    assert room is not None
    assert (room.couple, room.unread, room.position, room.last) == (couple, 2, 7, m[5])
    # a's view: b's two messages unread; the latest is a's own
    mine = await db.room_view(a.id)
    assert mine is not None
    assert (mine.unread, mine.last) == (2, m[5])
    # a message b hid (delete for me) is neither b's last message nor unread for b
    hide = NewChange(ChangeKind.HIDE, couple.id, b.id, READ_AT, message_id=m[5].id)
    await db.apply_changes([hide])
    room = await db.room_view(b.id)
    assert room is not None
    assert (room.unread, room.position, room.last) == (1, 7, m[4])


async def test_no_room_view_outside_an_active_couple(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    await db.append_messages([new_message(couple, a, "hello")])
    assert await db.room_view(uuid.uuid4()) is None
    await db.dissolve_couple(couple.id)
    assert await db.room_view(a.id) is None
    assert await db.room_view(b.id) is None
