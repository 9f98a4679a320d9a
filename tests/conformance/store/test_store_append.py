"""The append path: seq numbering, tempId idempotency, concurrency, batches over many couples."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from asyncpg.pgproto.pgproto import UUID as PgUUID  # type: ignore[import-untyped]
from tests.support.appends import all_stored

from ieum_chat.store import Couple, Database, NewMessage, Stored, User
from ieum_chat.store.records import Media

CoupleFactory = Callable[[], Awaitable[tuple[Couple, User, User]]]
MessageFactory = Callable[..., NewMessage]


def seqs(results: list[Stored]) -> list[int]:
    return [r.message.seq for r in results]


async def test_append_returns_the_stored_rows(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, _ = await make_couple()
    new = new_message(couple, a, "hello", temp_id="t-1")
    [stored] = all_stored(await db.append_messages([new]))
    assert stored.created
    m = stored.message
    assert (m.id, m.couple_id, m.sender_id, m.seq) == (new.id, couple.id, a.id, 1)
    assert (m.type, m.content, m.image_url, m.temp_id) == ("TEXT", "hello", None, "t-1")
    assert (m.is_read, m.read_at, m.created_at) == (False, None, new.created_at)
    room = await db.room_view(a.id)
    assert room is not None
    assert room.last == m
    assert await db.get_messages(couple.id) == [m]


async def test_append_empty_batch(db: Database) -> None:
    assert await db.append_messages([]) == []


async def test_image_and_sticker_round_trip(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    image = replace(
        new_message(couple, a, None, type="IMAGE"), image_url="https://cdn.example/i.png"
    )
    sticker = new_message(couple, b, "sticker-42", type="STICKER")
    stored = all_stored(await db.append_messages([image, sticker]))
    page = await db.get_messages(couple.id, ascending=True)
    assert [m.message for m in stored] == page
    assert (page[0].type, page[0].content, page[0].image_url) == (
        "IMAGE",
        None,
        "https://cdn.example/i.png",
    )
    assert (page[1].type, page[1].content) == ("STICKER", "sticker-42")


async def test_a_field_only_some_messages_of_a_batch_have_stays_with_them(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    # Batches where a field is set on none, one or all of the messages, with and without a
    # tempId stored before (the other path of the append): each row gets its own fields.
    couple, a, b = await make_couple()
    [first] = all_stored(await db.append_messages([new_message(couple, a, "first", temp_id="t")]))
    plain = new_message(couple, b, "plain")
    reply = replace(
        new_message(couple, a, None, type="IMAGE"),
        image_url="https://cdn.example/i.png",
        reply_to_id=first.message.id,
        media_url="https://cdn.example/i.png",
        media=Media(width=640, height=480),
    )
    bare = replace(new_message(couple, b, None, type="STICKER"), content=None)

    def again(m: NewMessage) -> NewMessage:
        return replace(m, id=uuid.uuid4())

    repeat = new_message(couple, a, "first", temp_id="t")
    batches = ([plain, reply, bare], [again(bare)], [repeat, again(plain)], [repeat, again(reply)])
    for batch in batches:
        results = await db.append_messages(batch)
        for new, result in zip(batch, results, strict=True):
            assert isinstance(result, Stored)
            m = result.message
            assert result.created is (new is not repeat)
            assert (m.id, m.type, m.content, m.image_url) == (
                first.message.id if new is repeat else new.id,
                new.type,
                new.content,
                new.image_url,
            )
            assert (m.temp_id, m.reply_to_id, m.media_url, m.media) == (
                new.temp_id,
                new.reply_to_id,
                new.media_url,
                new.media,
            )
    page = await db.get_messages(couple.id, ascending=True)
    assert [(m.type, m.reply_to_id is not None, m.media is not None) for m in page] == [
        ("TEXT", False, False),
        ("TEXT", False, False),
        ("IMAGE", True, True),
        ("STICKER", False, False),
        ("STICKER", False, False),
        ("TEXT", False, False),
        ("IMAGE", True, True),
    ]


async def test_ids_of_a_uuid_subclass_are_stored(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    # Ids read through asyncpg are its own subclass of uuid.UUID, and the server makes
    # messages from them: a batch of such ids is stored as any other, on both paths.
    couple, a, b = await make_couple()

    def theirs(new: NewMessage) -> NewMessage:
        return replace(
            new,
            id=PgUUID(str(new.id)),
            couple_id=PgUUID(str(new.couple_id)),
            sender_id=PgUUID(str(new.sender_id)),
        )

    first = theirs(new_message(couple, a, "first", temp_id="t"))
    [stored] = all_stored(await db.append_messages([first]))
    again = [theirs(new_message(couple, a, "first", temp_id="t")), theirs(new_message(couple, b))]
    results = all_stored(await db.append_messages(again))
    assert [r.created for r in results] == [False, True]
    page = await db.get_messages(couple.id, ascending=True)
    assert [(m.id, m.couple_id, m.sender_id, m.seq) for m in page] == [
        (first.id, couple.id, a.id, 1),
        (again[1].id, couple.id, b.id, 2),
    ]
    assert results[0].message == stored.message


async def test_text_to_escape_and_a_time_to_the_microsecond_are_stored_as_sent(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    # On PostgreSQL a batch travels as JSON text: what JSON escapes, and the microseconds of
    # a time, come back as they were sent, from a new batch and from a batch that repeats a
    # stored tempId (the other path of the append).
    couple, a, b = await make_couple()
    text = 'quote " backslash \\ slash / newline \n tab \t bell \x07 \u2028 💌 한글 {"a": [1]}'
    at = datetime(2026, 12, 6, 19, 0, 1, 123456)
    first = replace(new_message(couple, a, text, temp_id="t"), created_at=at)
    second = replace(new_message(couple, b, text[::-1]), created_at=at + timedelta(microseconds=1))
    [stored_first] = all_stored(await db.append_messages([first]))
    repeat = replace(first, id=uuid.uuid4())
    results = all_stored(await db.append_messages([repeat, second]))
    assert [r.created for r in results] == [False, True]
    page = await db.get_messages(couple.id, ascending=True)
    assert page == [stored_first.message, results[1].message]
    assert [(m.content, m.created_at) for m in page] == [
        (text, at),
        (text[::-1], at + timedelta(microseconds=1)),
    ]
    assert results[0].message == stored_first.message


async def test_seq_counts_per_couple_from_one(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    c1, a1, b1 = await make_couple()
    c2, a2, _ = await make_couple()
    assert seqs(all_stored(await db.append_messages([new_message(c1, a1)]))) == [1]
    assert seqs(
        all_stored(await db.append_messages([new_message(c1, b1), new_message(c1, a1)]))
    ) == [2, 3]
    assert seqs(all_stored(await db.append_messages([new_message(c2, a2)]))) == [1]
    mixed = [new_message(c, s) for c, s in [(c1, a1), (c2, a2), (c2, a2), (c1, b1), (c2, a2)]]
    assert seqs(all_stored(await db.append_messages(mixed))) == [4, 2, 3, 5, 4]
    assert [m.seq for m in await db.get_messages(c1.id, ascending=True)] == [1, 2, 3, 4, 5]
    assert [m.seq for m in await db.get_messages(c2.id, ascending=True)] == [1, 2, 3, 4]


async def test_temp_id_dedup_across_calls(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    [first] = all_stored(await db.append_messages([new_message(couple, a, "once", temp_id="dup")]))
    retry = new_message(couple, a, "once (retry)", temp_id="dup")
    [again] = all_stored(await db.append_messages([retry]))
    assert again == Stored(first.message, created=False)
    # the same tempId from the partner, or in another couple, is a different message
    other_couple, c, _ = await make_couple()
    [partner] = all_stored(await db.append_messages([new_message(couple, b, temp_id="dup")]))
    [elsewhere] = all_stored(
        await db.append_messages([new_message(other_couple, c, temp_id="dup")])
    )
    assert partner.created
    assert elsewhere.created
    assert (partner.message.seq, elsewhere.message.seq) == (2, 1)
    # the retry consumed no seq
    [next_one] = all_stored(await db.append_messages([new_message(couple, a)]))
    assert next_one.message.seq == 3
    assert [m.content for m in await db.get_messages(couple.id, ascending=True)] == [
        "once",
        "안녕하세요!",
        "안녕하세요!",
    ]


async def test_temp_id_dedup_within_one_batch(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, _ = await make_couple()
    batch = [
        new_message(couple, a, "1", temp_id="x"),
        new_message(couple, a, "2", temp_id="y"),
        new_message(couple, a, "1 again", temp_id="x"),
        new_message(couple, a, "3"),
    ]
    results = all_stored(await db.append_messages(batch))
    assert [r.created for r in results] == [True, True, False, True]
    assert seqs(results) == [1, 2, 1, 3]
    assert results[2].message == results[0].message
    assert results[2].message.id == batch[0].id
    assert len(await db.get_messages(couple.id)) == 3


async def test_messages_without_temp_id_never_collide(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, _ = await make_couple()
    results = all_stored(await db.append_messages([new_message(couple, a) for _ in range(3)]))
    results += all_stored(await db.append_messages([new_message(couple, a)]))
    assert all(r.created for r in results)
    assert seqs(results) == [1, 2, 3, 4]


async def test_empty_temp_id_is_a_temp_id(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, _ = await make_couple()
    results = all_stored(await db.append_messages([new_message(couple, a, temp_id="")]))
    results += all_stored(await db.append_messages([new_message(couple, a, temp_id="")]))
    assert [r.created for r in results] == [True, False]


async def test_aware_created_at_is_stored_as_naive_utc(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, _ = await make_couple()
    kst = timezone(timedelta(hours=9))
    new = replace(new_message(couple, a), created_at=datetime(2024, 1, 11, 19, 10, tzinfo=kst))
    [stored] = all_stored(await db.append_messages([new]))
    assert stored.message.created_at == datetime(2024, 1, 11, 10, 10)
    assert (await db.get_messages(couple.id))[0].created_at == datetime(2024, 1, 11, 10, 10)
    utc_new = replace(new_message(couple, a), created_at=datetime(2024, 1, 1, tzinfo=UTC))
    [utc_stored] = all_stored(await db.append_messages([utc_new]))
    assert utc_stored.message.created_at == datetime(2024, 1, 1)


async def burst_over(db: Database, batch: list[NewMessage]) -> list[Stored]:
    return all_stored(await db.append_messages(batch))


def _assert_gapless(results: list[list[Stored]], expected: int) -> None:
    numbers = sorted(r.message.seq for batch in results for r in batch)
    assert numbers == list(range(1, expected + 1))


async def test_concurrent_appends_on_one_couple(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    results = await asyncio.gather(
        *(db.append_messages([new_message(couple, a if i % 2 else b)]) for i in range(50))
    )
    _assert_gapless([all_stored(batch) for batch in results], 50)
    assert [m.seq for m in await db.get_messages(couple.id, limit=100, ascending=True)] == list(
        range(1, 51)
    )


async def test_concurrent_appends_on_several_couples(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    pairs = [await make_couple() for _ in range(5)]

    async def burst(couple: Couple, sender: User, size: int) -> list[Stored]:
        return await burst_over(db, [new_message(couple, sender) for _ in range(size)])

    calls = [burst(c, a, 1 + i % 3) for i in range(50) for c, a, _ in [pairs[i % 5]]]
    # and batches spanning every couple at once, as the group-commit writer makes them
    calls += [burst_over(db, [new_message(c, b) for c, _, b in reversed(pairs)]) for _ in range(10)]
    results = await asyncio.gather(*calls)
    for couple, _, _ in pairs:
        per_couple = [[r for r in batch if r.message.couple_id == couple.id] for batch in results]
        expected = sum(len(b) for b in per_couple)
        _assert_gapless(per_couple, expected)


async def test_concurrent_appends_from_two_databases(
    db: Database,
    migrated_url: str,
    make_couple: CoupleFactory,
    new_message: MessageFactory,
) -> None:
    """Two pools (as two server processes would have) appending to the same couples."""
    c1, a1, _ = await make_couple()
    c2, a2, b2 = await make_couple()
    other = await Database.connect(migrated_url)
    try:
        calls = []
        for i in range(60):
            target = db if i % 2 else other
            couple, sender = ((c1, a1), (c2, a2), (c2, b2))[i % 3]
            batch = [new_message(couple, sender, temp_id=f"t{i}")]
            if i % 5 == 0:
                batch.append(new_message(c1 if couple is c2 else c2, a2 if couple is c1 else a1))
            calls.append(target.append_messages(batch))
        # the same tempIds again, racing the originals from the other pool
        calls += [
            (other if i % 2 else db).append_messages([new_message(c1, a1, temp_id=f"t{i}")])
            for i in range(0, 60, 3)
        ]
        results = [all_stored(batch) for batch in await asyncio.gather(*calls)]
    finally:
        await other.close()
    for couple in (c1, c2):
        stored = await db.get_messages(couple.id, limit=100, ascending=True)
        assert [m.seq for m in stored] == list(range(1, len(stored) + 1))
        created = [
            r.message
            for outcome in results
            for r in outcome
            if r.created and r.message.couple_id == couple.id
        ]
        assert sorted(m.seq for m in created) == [m.seq for m in stored]
    # every duplicate answered with the one stored row
    by_key: dict[tuple[Any, ...], set[uuid.UUID]] = {}
    for outcome in results:
        for r in outcome:
            if r.message.temp_id is not None:
                key = (r.message.couple_id, r.message.sender_id, r.message.temp_id)
                by_key.setdefault(key, set()).add(r.message.id)
    assert all(len(ids) == 1 for ids in by_key.values())


async def test_large_batch(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    batch = [new_message(couple, a if i % 2 else b, temp_id=f"k{i}") for i in range(1200)]
    results = all_stored(await db.append_messages(batch))
    assert seqs(results) == list(range(1, 1201))
    again = all_stored(await db.append_messages(batch))
    assert not any(r.created for r in again)
    assert seqs(again) == list(range(1, 1201))


async def test_a_cancelled_append_stores_its_batch_whole_or_not_at_all(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    """The caller stops waiting; the transaction it started ends on its own (committed or
    rolled back, never half), and the next append numbers after whatever it stored."""
    couple, a, _ = await make_couple()
    for delay in (0.0, 0.001, 0.005):
        batch = [new_message(couple, a, f"cancelled {delay} {i}") for i in range(50)]
        task = asyncio.create_task(db.append_messages(batch))
        await asyncio.sleep(delay)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        after = all_stored(await db.append_messages([new_message(couple, a, f"after {delay}")]))
        stored = await db.get_messages(couple.id, limit=500, ascending=True)
        kept = [m for m in stored if (m.content or "").startswith(f"cancelled {delay} ")]
        assert len(kept) in (0, 50), delay
        assert [m.seq for m in stored] == list(range(1, len(stored) + 1))
        assert after[0].message.seq == stored[-1].seq
