"""How couples and accounts end, on every database: dissolution (idempotent, refusing every
later append and change), account deletion (dissolving the couple), notices from the system
sender, one active couple per user, the purge that erases everything a couple left behind
and nothing else, and the claim that lets one node at a time run a periodic job."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from ieum_chat.store import Couple, Database, NewMessage, User
from ieum_chat.store.couples import PairingRefusal, PairingRefused
from ieum_chat.store.lifecycle import PurgePlan
from ieum_chat.store.records import (
    NOTICE,
    SYSTEM_USER_ID,
    Applied,
    ChangeKind,
    NewChange,
    Refused,
    Stored,
)
from ieum_chat.store.schema import metadata, utcnow

CoupleFactory = Callable[[], Awaitable[tuple[Couple, User, User]]]
MessageFactory = Callable[..., NewMessage]


async def stored(db: Database, new: NewMessage) -> Stored:
    (result,) = await db.append_messages([new])
    assert isinstance(result, Stored), result
    return result


async def test_dissolve_is_idempotent_and_ends_membership(
    db: Database, make_couple: CoupleFactory
) -> None:
    couple, a, b = await make_couple()
    assert couple.active
    first = await db.dissolve_couple(couple.id)
    assert first is not None
    assert first.dissolved_at is not None
    assert not first.active
    again = await db.dissolve_couple(couple.id)
    assert again == first  # the first time stays
    assert await db.get_couple(couple.id) == first
    assert await db.couple_of(a.id) is None
    assert await db.couple_of(b.id) is None
    assert await db.dissolve_couple(uuid.uuid4()) is None


async def test_dissolved_couple_refuses_appends_and_changes(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    before = await stored(db, new_message(couple, a, "before"))
    other, c, _ = await make_couple_of(db, "carol", "dave")
    await db.dissolve_couple(couple.id)
    late, kept = await db.append_messages(
        [new_message(couple, a, "after"), new_message(other, c, "elsewhere")]
    )
    assert isinstance(late, Refused)
    assert isinstance(kept, Stored)
    assert kept.message.seq == 1
    (react,) = await db.apply_changes(
        [
            NewChange(
                ChangeKind.REACT,
                couple.id,
                b.id,
                utcnow(),
                message_id=before.message.id,
                emoji="❤️",
            )
        ]
    )
    assert isinstance(react, Refused)
    assert await db.mark_read(couple.id, b.id, up_to_seq=10, read_at=utcnow()) == []
    assert [m.content for m in await db.get_messages(couple.id)] == ["before"]


async def make_couple_of(db: Database, x: str, y: str) -> tuple[Couple, User, User]:
    a, b = await db.create_user(x), await db.create_user(y)
    return await db.create_couple(a.id, b.id), a, b


async def test_one_active_couple_per_user_and_reforming(
    db: Database, make_couple: CoupleFactory
) -> None:
    couple, a, b = await make_couple()
    carol = await db.create_user("carol")
    with pytest.raises(PairingRefused) as refused:
        await db.create_couple(a.id, carol.id)
    assert refused.value.reason is PairingRefusal.ALREADY_PAIRED
    with pytest.raises(PairingRefused) as refused:
        await db.create_couple(carol.id, carol.id)
    assert refused.value.reason is PairingRefusal.SAME_USER
    with pytest.raises(PairingRefused) as refused:
        await db.create_couple(carol.id, uuid.uuid4())
    assert refused.value.reason is PairingRefusal.UNKNOWN_USER
    await db.ensure_system_user()
    with pytest.raises(PairingRefused) as refused:
        await db.create_couple(carol.id, SYSTEM_USER_ID)
    assert refused.value.reason is PairingRefusal.UNKNOWN_USER

    await db.dissolve_couple(couple.id)
    again = await db.create_couple(b.id, a.id)  # the same two, a new couple
    assert again.id != couple.id
    assert again.active
    assert await db.couple_of(a.id) == again
    assert (await db.get_couple(couple.id)).dissolved_at is not None  # type: ignore[union-attr]


async def test_deleting_a_user_dissolves_their_couple(
    db: Database, make_couple: CoupleFactory
) -> None:
    couple, a, b = await make_couple()
    result = await db.delete_user(a.id)
    assert result is not None
    user, dissolved = result
    assert user.deleted_at is not None
    assert dissolved is not None
    assert dissolved.id == couple.id
    assert not dissolved.active
    assert (await db.get_user(a.id)).deleted_at == user.deleted_at  # type: ignore[union-attr]
    assert await db.couple_of(b.id) is None
    again = await db.delete_user(a.id)
    assert again is not None
    assert again[0].deleted_at == user.deleted_at
    assert await db.delete_user(uuid.uuid4()) is None
    # a deleted account is neither updated nor paired
    assert await db.upsert_user(User(a.id, "again", None)) is None
    carol = await db.create_user("carol")
    with pytest.raises(PairingRefused):
        await db.create_couple(carol.id, a.id)


async def test_upsert_user_creates_then_updates(db: Database) -> None:
    user = User(uuid.uuid4(), "민지", None)
    assert await db.upsert_user(user) is True
    assert await db.upsert_user(User(user.id, "민지 2", "https://img.example/p.png")) is False
    assert await db.get_user(user.id) == User(user.id, "민지 2", "https://img.example/p.png")
    with pytest.raises(ValueError, match="user name"):
        await db.upsert_user(User(uuid.uuid4(), " ", None))
    with pytest.raises(ValueError, match="system"):
        await db.upsert_user(User(SYSTEM_USER_ID, "me", None))


async def test_notices_come_from_the_system_sender(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, _ = await make_couple()
    await db.ensure_system_user()
    await db.ensure_system_user()  # idempotent
    notice = new_message(couple, SYSTEM_USER_ID, "기념일 100일", temp_id="n-1", type=NOTICE)
    first = await stored(db, notice)
    assert (first.message.seq, first.created) == (1, True)
    repeat = await stored(db, new_message(couple, SYSTEM_USER_ID, "x", temp_id="n-1", type=NOTICE))
    assert repeat == Stored(first.message, created=False)
    # the system sender sends notices only; a member cannot send one
    (text,) = await db.append_messages([new_message(couple, SYSTEM_USER_ID, "hi")])
    assert isinstance(text, Refused)
    as_member = await stored(db, new_message(couple, a, "hi"))
    assert as_member.message.seq == 2
    # notices count as unread for both members
    assert await db.unread_count(couple.id, a.id) == 1


async def test_purge_erases_every_trace_and_nothing_else(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    secret = "우리만 아는 비밀 " + uuid.uuid4().hex
    gone, a, b = await make_couple()
    kept, c, _d = await make_couple_of(db, "carol", "dave")
    first = await stored(db, new_message(gone, a, secret))
    await stored(db, new_message(gone, b, "답장", type="TEXT"))
    changes = [
        NewChange(
            ChangeKind.EDIT, gone.id, a.id, utcnow(), message_id=first.message.id, content=secret
        ),
        NewChange(
            ChangeKind.REACT,
            gone.id,
            b.id,
            utcnow(),
            message_id=first.message.id,
            emoji="❤️",
        ),
        NewChange(ChangeKind.HIDE, gone.id, b.id, utcnow(), message_id=first.message.id),
    ]
    assert all(isinstance(r, Applied) for r in await db.apply_changes(changes))
    await db.mark_read(gone.id, b.id, up_to_seq=10, read_at=utcnow())
    other = await stored(db, new_message(kept, c, "남의 대화"))
    await db.delete_user(a.id)

    # within the retention period nothing goes
    assert await db.purge_plan(utcnow() - timedelta(days=30)) == _empty_plan()
    cutoff = utcnow() + timedelta(seconds=1)
    plan = await db.purge_plan(cutoff)
    assert [e.couple_id for e in plan.couples] == [gone.id]
    assert (plan.couples[0].messages, plan.couples[0].events, plan.couples[0].hides) == (2, 3, 1)
    assert plan.users == (a.id,)  # b was not deleted: their account stays
    assert await db.erase_couple(gone.id, cutoff) is True
    assert await db.erase_couple(gone.id, cutoff) is False  # already gone
    assert await db.erase_users(plan.users, cutoff) == 1

    assert await _rows_mentioning(db, secret) == []
    # Ids stay only in the directory feed, which tells the nodes to drop what they cached
    # of them, and is pruned after minutes.
    for erased in (a.id, gone.id):
        assert {t for t, _ in await _rows_mentioning(db, str(erased))} <= {"directory_changes"}
    assert await db.get_user(b.id) is not None
    assert [m.id for m in await db.get_messages(kept.id)] == [other.message.id]
    assert await db.couple_of(c.id) == kept
    assert await db.purge_plan(cutoff) == _empty_plan()


def _empty_plan() -> PurgePlan:
    return PurgePlan((), ())


async def _rows_mentioning(db: Database, needle: str) -> list[tuple[str, str]]:
    """Every (table, row) of every table whose text holds ``needle`` (UUIDs with or without
    dashes, as either database stores them)."""
    forms = {needle, needle.replace("-", "")}

    def scan(conn: object) -> list[tuple[str, str]]:
        found = []
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):  # type: ignore[attr-defined]
                text = (
                    " ".join(str(v) for v in row)
                    + " "
                    + " ".join(v.hex for v in row if isinstance(v, uuid.UUID))
                )
                if any(f in text for f in forms):
                    found.append((table.name, text))
        return found

    return await db.db_pool.read_txn("scan", scan)


async def test_one_node_claims_a_periodic_run(db: Database) -> None:
    now = datetime(2026, 1, 1, 3, 0)
    day = timedelta(days=1)
    claims = await asyncio.gather(*(db.claim_run("purge", f"node-{i}", now, day) for i in range(5)))
    assert sorted(claims) == [False, False, False, False, True]
    assert await db.claim_run("purge", "node-1", now + timedelta(hours=23), day) is False
    later = await asyncio.gather(
        *(db.claim_run("purge", f"node-{i}", now + day, day) for i in range(5))
    )
    assert sorted(later) == [False, False, False, False, True]
    assert await db.claim_run("other", "node-1", now, day) is True  # jobs are separate
