"""One bad message in a batch fails that message only.

The chat service commits the messages of many couples in one batch (group commit), and it
accepts a SEND on its cached view of who belongs to which couple. So a batch may carry a
message whose couple was deleted since, or whose sender is not (or no longer) a member: the
store refuses that message, answers the others as usual, and stores them.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import create_async_engine

from ieum_chat.store import (
    Couple,
    Database,
    NewMessage,
    Refusal,
    Refused,
    Stored,
    User,
    normalize_url,
)
from ieum_chat.store.schema import couples, messages

CoupleFactory = Callable[[], Awaitable[tuple[Couple, User, User]]]
MessageFactory = Callable[..., NewMessage]


async def delete_couple(url: str, couple_id: uuid.UUID) -> None:
    """Delete a couple and its messages behind the store's back, as an operator would."""
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(messages).where(messages.c.couple_id == couple_id))
            await conn.execute(delete(couples).where(couples.c.id == couple_id))
    finally:
        await engine.dispose()


async def last_seq(url: str, couple_id: uuid.UUID) -> int:
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.connect() as conn:
            query = select(couples.c.last_seq).where(couples.c.id == couple_id)
            return int((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()


def stored(result: Stored | Refused) -> Stored:
    assert isinstance(result, Stored), f"expected a stored message, got {result}"
    return result


def refused(result: Stored | Refused, new: NewMessage, reason: Refusal) -> None:
    assert isinstance(result, Refused), f"expected a refusal, got {result}"
    assert (result.new, result.reason) == (new, reason)


async def test_a_deleted_couple_fails_only_its_own_messages(
    db: Database,
    migrated_url: str,
    make_couple: CoupleFactory,
    new_message: MessageFactory,
) -> None:
    c1, a1, b1 = await make_couple()
    c2, a2, _ = await make_couple()
    gone, ga, gb = await make_couple()
    [before] = await db.append_messages([new_message(gone, ga, "before")])
    await delete_couple(migrated_url, gone.id)

    batch = [
        new_message(c1, a1, "1", temp_id="c1-1"),
        new_message(gone, ga, "lost", temp_id="g-1"),
        new_message(c2, a2, "2"),
        new_message(gone, gb, "lost too"),
        new_message(c1, b1, "3", temp_id="c1-2"),
        new_message(gone, ga, "lost again", temp_id="g-1"),  # a repeat of a refused one
    ]
    results = await db.append_messages(batch)

    assert len(results) == len(batch)
    for i in (1, 3, 5):
        refused(results[i], batch[i], Refusal.NOT_A_MEMBER)
    kept = [stored(results[i]) for i in (0, 2, 4)]
    assert [(r.created, r.message.couple_id, r.message.seq) for r in kept] == [
        (True, c1.id, 1),
        (True, c2.id, 1),
        (True, c1.id, 2),
    ]
    assert await db.get_messages(c1.id, ascending=True) == [kept[0].message, kept[2].message]
    assert await db.get_messages(c2.id) == [kept[1].message]
    assert await db.get_messages(gone.id) == []
    assert stored(before).message.couple_id == gone.id

    # the writer carries on: retries of the stored ones are answered with them
    again = await db.append_messages([batch[0], batch[1]])
    assert stored(again[0]) == Stored(kept[0].message, created=False)
    refused(again[1], batch[1], Refusal.NOT_A_MEMBER)


async def test_a_sender_outside_the_couple_fails_only_its_own_message(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    c1, a1, _ = await make_couple()
    _, stranger, _ = await make_couple()
    batch = [
        new_message(c1, stranger, "not my couple"),
        new_message(c1, a1, "mine"),
        new_message(c1, uuid.uuid4(), "nobody", temp_id="t"),  # no such user
    ]
    results = await db.append_messages(batch)
    refused(results[0], batch[0], Refusal.NOT_A_MEMBER)
    refused(results[2], batch[2], Refusal.NOT_A_MEMBER)
    assert stored(results[1]).message.seq == 1
    assert [m.content for m in await db.get_messages(c1.id)] == ["mine"]


async def test_fields_that_do_not_fit_fail_only_their_message(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    batch = [
        new_message(couple, a, temp_id="t" * 65),
        new_message(couple, b, "ok", temp_id="t" * 64),
        new_message(couple, a, type="X" * 21),
        new_message(couple, a, type=""),
    ]
    results = await db.append_messages(batch)
    for i in (0, 2, 3):
        refused(results[i], batch[i], Refusal.DOES_NOT_FIT)
    assert stored(results[1]).message.seq == 1
    assert [m.content for m in await db.get_messages(couple.id)] == ["ok"]


async def test_a_batch_of_refusals_stores_nothing_and_uses_no_seq(
    db: Database,
    migrated_url: str,
    make_couple: CoupleFactory,
    new_message: MessageFactory,
) -> None:
    couple, a, _ = await make_couple()
    ghost = Couple(uuid.uuid4(), a.id, uuid.uuid4())
    batch = [
        new_message(ghost, a),
        new_message(couple, uuid.uuid4()),
        new_message(couple, a, type=""),
    ]
    results = await db.append_messages(batch)
    assert all(isinstance(r, Refused) for r in results)
    assert await db.get_messages(couple.id) == []
    assert await last_seq(migrated_url, couple.id) == 0
    [ok] = await db.append_messages([new_message(couple, a)])
    assert stored(ok).message.seq == 1
