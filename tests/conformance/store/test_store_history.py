"""History: cursor pages by seq in both directions, replay after a seq, the last message."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import pytest

from ieum_chat.store import Couple, Database, NewMessage, User

CoupleFactory = Callable[[], Awaitable[tuple[Couple, User, User]]]
MessageFactory = Callable[..., NewMessage]


@pytest.fixture
async def history(db: Database, make_couple: CoupleFactory, new_message: MessageFactory) -> Couple:
    """A couple with 120 messages (seq 1..120) next to a noisy neighbour couple."""
    couple, a, b = await make_couple()
    neighbour, c, _ = await make_couple()
    for start in range(0, 120, 40):
        batch = [
            new_message(couple, a if i % 2 else b, f"#{i + 1}") for i in range(start, start + 40)
        ]
        batch += [new_message(neighbour, c) for _ in range(10)]
        await db.append_messages(batch)
    return couple


async def test_newest_first_by_default(db: Database, history: Couple) -> None:
    page = await db.get_messages(history.id)
    assert [m.seq for m in page] == list(range(120, 70, -1))
    assert all(m.couple_id == history.id for m in page)
    assert page[0].content == "#120"


async def test_paging_backwards_with_before_seq(db: Database, history: Couple) -> None:
    seen: list[int] = []
    before: int | None = None
    while True:
        page = await db.get_messages(history.id, before_seq=before, limit=50)
        if not page:
            break
        seen += [m.seq for m in page]
        before = page[-1].seq
    assert seen == list(range(120, 0, -1))


async def test_paging_forwards_with_after_seq(db: Database, history: Couple) -> None:
    seen: list[int] = []
    after = 0
    while page := await db.get_messages(history.id, after_seq=after, limit=33, ascending=True):
        seen += [m.seq for m in page]
        after = page[-1].seq
    assert seen == list(range(1, 121))


async def test_replay_after_seq(db: Database, history: Couple) -> None:
    replay = await db.get_messages(history.id, after_seq=117, ascending=True)
    assert [m.seq for m in replay] == [118, 119, 120]
    assert await db.get_messages(history.id, after_seq=120, ascending=True) == []


async def test_window_between_two_seqs(db: Database, history: Couple) -> None:
    window = await db.get_messages(history.id, after_seq=10, before_seq=15)
    assert [m.seq for m in window] == [14, 13, 12, 11]
    ascending = await db.get_messages(history.id, after_seq=10, before_seq=15, ascending=True)
    assert [m.seq for m in ascending] == [11, 12, 13, 14]
    newest_after = await db.get_messages(history.id, after_seq=100, limit=5)
    assert [m.seq for m in newest_after] == [120, 119, 118, 117, 116]


async def test_limit(db: Database, history: Couple) -> None:
    assert len(await db.get_messages(history.id, limit=1)) == 1
    assert len(await db.get_messages(history.id, limit=500)) == 120
    with pytest.raises(ValueError, match="limit"):
        await db.get_messages(history.id, limit=0)


async def test_empty_and_unknown_couples(db: Database, make_couple: CoupleFactory) -> None:
    couple, _, _ = await make_couple()
    assert await db.get_messages(couple.id) == []
    assert await db.get_messages(uuid.uuid4()) == []


async def test_last_message(
    db: Database, history: Couple, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    room = await db.room_view(history.user1_id)
    assert room is not None
    last = room.last
    assert last is not None
    assert (last.seq, last.content) == (120, "#120")
    assert last == (await db.get_messages(history.id, limit=1))[0]
