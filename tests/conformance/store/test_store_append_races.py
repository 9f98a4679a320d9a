"""The append path under load: racing writers, tempId repeats within and across batches, full
batches over many couples. Every outcome is checked against a plain model of the semantics
(``append_messages``' docstring) and against what reads back."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from tests.support.appends import all_stored

from ieum_chat.store import Couple, Database, Message, NewMessage, Stored, User

Pair = tuple[Couple, User, User]
Key = tuple[uuid.UUID, uuid.UUID, str]

_T0 = datetime(2024, 1, 11, 10, 10, 0, 123456)
MAX_BATCH = 512  # the chat service's group-commit writers send at most this many at once


class Model:
    """``append_messages`` in a few lines of Python: what each result should be."""

    def __init__(self) -> None:
        self.last_seq: dict[uuid.UUID, int] = defaultdict(int)
        self.known: dict[Key, tuple[uuid.UUID, int]] = {}

    def append(self, batch: Sequence[NewMessage]) -> list[tuple[bool, uuid.UUID, int]]:
        out = []
        for new in batch:
            key = None if new.temp_id is None else (new.couple_id, new.sender_id, new.temp_id)
            if key is not None and key in self.known:
                out.append((False, *self.known[key]))
                continue
            self.last_seq[new.couple_id] += 1
            row = (new.id, self.last_seq[new.couple_id])
            if key is not None:
                self.known[key] = row
            out.append((True, *row))
        return out


def outcomes(results: list[Stored]) -> list[tuple[bool, uuid.UUID, int]]:
    return [(r.created, r.message.id, r.message.seq) for r in results]


class Sender:
    """Makes messages: random couple and sender, numbered contents, distinct timestamps."""

    def __init__(self, pairs: list[Pair], seed: int) -> None:
        self.pairs = pairs
        self.rng = random.Random(seed)
        self.count = 0

    def message(self, temp_id: str | None, *, like: NewMessage | None = None) -> NewMessage:
        """A new message; ``like``: from the same sender in the same couple."""
        couple, a, b = self.rng.choice(self.pairs)
        self.count += 1
        return NewMessage(
            id=uuid.uuid4(),
            couple_id=couple.id if like is None else like.couple_id,
            sender_id=self.rng.choice((a, b)).id if like is None else like.sender_id,
            type=self.rng.choice(("TEXT", "IMAGE", "STICKER")),
            content=f"message {self.count} 안녕",
            image_url=None if self.count % 3 else f"https://cdn.example/{self.count}.png",
            temp_id=temp_id,
            created_at=_T0 + timedelta(milliseconds=self.count),
        )


async def history(db: Database, couple: Couple) -> list[Message]:
    return await db.get_messages(couple.id, limit=10_000, ascending=True)


async def assert_consistent(db: Database, pairs: list[Pair], results: list[list[Stored]]) -> None:
    """Per couple: seqs 1..n with no gap, exactly the created messages, read back as returned;
    one stored row per tempId key, and every result for that key is that row."""
    created = {r.message.id: r.message for batch in results for r in batch if r.created}
    stored_ids: set[uuid.UUID] = set()
    by_key: dict[Key, Message] = {}
    for couple, _, _ in pairs:
        rows = await history(db, couple)
        assert [m.seq for m in rows] == list(range(1, len(rows) + 1))
        for m in rows:
            assert created[m.id] == m
            stored_ids.add(m.id)
            if m.temp_id is not None:
                key = (m.couple_id, m.sender_id, m.temp_id)
                assert key not in by_key, f"tempId {key} stored twice"
                by_key[key] = m
    assert stored_ids == set(created)
    for batch in results:
        for r in batch:
            m = r.message
            if m.temp_id is not None:
                assert by_key[(m.couple_id, m.sender_id, m.temp_id)] == m


async def test_batch_over_many_couples_with_repeated_temp_ids(db: Database) -> None:
    pairs = await db.seed_couples(30)
    send = Sender(pairs, seed=7)
    model = Model()
    earlier = [send.message(f"early-{i}") for i in range(60)]
    first = all_stored(await db.append_messages(earlier))
    assert outcomes(first) == model.append(earlier)

    batch: list[NewMessage] = []
    for i in range(400):
        roll = send.rng.random()
        if roll < 0.15:  # a retry of a message the earlier batch stored
            old = send.rng.choice(earlier)
            batch.append(send.message(old.temp_id, like=old))
        elif roll < 0.45 and batch:  # a repeat of a message earlier in this batch
            prior = send.rng.choice(batch)
            batch.append(send.message(prior.temp_id, like=prior))
        elif roll < 0.6:
            batch.append(send.message(None))
        elif roll < 0.65:
            batch.append(send.message(""))  # empty, but a tempId all the same
        else:
            batch.append(send.message(f"new-{i}"))
    results = all_stored(await db.append_messages(batch))

    assert outcomes(results) == model.append(batch)
    assert any(not r.created for r in results)
    for new, r in zip(batch, results, strict=True):
        if r.created:  # stored as sent
            m = r.message
            assert (m.id, m.type, m.content, m.image_url, m.created_at, m.temp_id) == (
                new.id,
                new.type,
                new.content,
                new.image_url,
                new.created_at,
                new.temp_id,
            )
            assert (m.is_read, m.read_at) == (False, None)
    await assert_consistent(db, pairs, [first, results])


async def test_full_batches(db: Database) -> None:
    pairs = await db.seed_couples(50)
    send = Sender(pairs, seed=11)
    model = Model()
    batch = [send.message(f"full-{i}") for i in range(MAX_BATCH)]
    results = all_stored(await db.append_messages(batch))
    assert outcomes(results) == model.append(batch)
    assert all(r.created for r in results)

    again = all_stored(await db.append_messages(batch))  # every one a retry: nothing new, same rows
    assert [r.created for r in again] == [False] * MAX_BATCH
    assert [r.message for r in again] == [r.message for r in results]

    mixed = [send.message(None if i % 2 else f"more-{i}") for i in range(MAX_BATCH)]
    more = all_stored(await db.append_messages(mixed))
    assert outcomes(more) == model.append(mixed)
    await assert_consistent(db, pairs, [results, again, more])


async def test_two_databases_race_on_the_same_couples(db: Database, migrated_url: str) -> None:
    """Two pools, as two server processes would have, sending overlapping batches over the
    same couples with the same tempIds, several batches in flight on each."""
    pairs = await db.seed_couples(8)
    other = await Database.connect(migrated_url)
    try:
        calls = []
        for side, target in enumerate((db, other, db, other)):
            send = Sender(pairs, seed=side)
            for _ in range(12):
                size = send.rng.choice((1, 2, 5, 20, 40))
                batch = [
                    send.message(None if send.rng.random() < 0.2 else f"k{send.rng.randrange(12)}")
                    for _ in range(size)
                ]
                calls.append(target.append_messages(batch))
        # a deadlock would surface as a StoreError (PostgreSQL detects it) or hang here
        async with asyncio.timeout(120):
            results = [all_stored(batch) for batch in await asyncio.gather(*calls)]
    finally:
        await other.close()
    await assert_consistent(db, pairs, results)


async def test_concurrent_batches_carrying_the_same_temp_id_store_it_once(
    db: Database, migrated_url: str
) -> None:
    [pair] = await db.seed_couples(1)
    couple = pair[0]
    other = await Database.connect(migrated_url)
    try:
        send = Sender([pair], seed=3)
        original = send.message("same")
        batches = [
            [send.message(None), send.message("same", like=original), send.message(f"own-{i}")]
            for i in range(16)
        ]
        async with asyncio.timeout(120):
            results = [
                all_stored(batch)
                for batch in await asyncio.gather(
                    *((db, other)[i % 2].append_messages(b) for i, b in enumerate(batches))
                )
            ]
    finally:
        await other.close()
    same = [batch[1] for batch in results]
    assert sum(r.created for r in same) == 1
    assert len({r.message for r in same}) == 1
    rows = await history(db, couple)
    assert len(rows) == 16 * 2 + 1
    assert [m.temp_id for m in rows].count("same") == 1
    await assert_consistent(db, [pair], results)
