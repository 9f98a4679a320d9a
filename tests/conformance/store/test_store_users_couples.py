"""Users and couples: creation, lookup and every refusal."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ieum_chat.store import Couple, Database, User

CoupleFactory = Callable[[], Awaitable[tuple[Couple, User, User]]]


async def test_dialect_and_ping(db: Database, backend: Any) -> None:
    assert db.dialect == backend.dialect
    await db.ping()


async def test_create_and_get_user(db: Database) -> None:
    user = await db.create_user("홍길동", "https://img.example/1.png")
    assert user == User(user.id, "홍길동", "https://img.example/1.png")
    assert await db.get_user(user.id) == user
    plain = await db.create_user("bob")
    assert plain.profile_image is None
    assert await db.get_user(plain.id) == plain
    assert await db.get_user(uuid.uuid4()) is None


async def test_get_users(db: Database) -> None:
    a = await db.create_user("a")
    b = await db.create_user("b")
    unknown = uuid.uuid4()
    assert await db.get_users([a.id, b.id, unknown, a.id]) == {a.id: a, b.id: b}
    assert await db.get_users([]) == {}
    assert await db.get_users({unknown}) == {}


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
async def test_create_user_refuses_bad_names(db: Database, name: str) -> None:
    with pytest.raises(ValueError, match="user name"):
        await db.create_user(name)


async def test_user_name_of_100_characters_fits(db: Database) -> None:
    user = await db.create_user("가" * 100)
    assert await db.get_user(user.id) == user


async def test_create_and_find_couple(db: Database) -> None:
    a = await db.create_user("alice")
    b = await db.create_user("bob")
    single = await db.create_user("carol")
    couple = await db.create_couple(a.id, b.id)
    assert couple == Couple(couple.id, a.id, b.id)
    assert await db.get_couple(couple.id) == couple
    assert await db.get_couple(uuid.uuid4()) is None
    assert await db.couple_of(a.id) == couple
    assert await db.couple_of(b.id) == couple
    assert await db.couple_of(single.id) is None
    assert await db.couple_of(uuid.uuid4()) is None


async def test_couple_needs_two_different_users(db: Database) -> None:
    a = await db.create_user("alice")
    with pytest.raises(ValueError, match="two different users"):
        await db.create_couple(a.id, a.id)


async def test_couple_needs_existing_users(db: Database) -> None:
    a = await db.create_user("alice")
    ghost = uuid.uuid4()
    with pytest.raises(ValueError, match=f"no such user: {ghost}"):
        await db.create_couple(a.id, ghost)
    with pytest.raises(ValueError, match=f"no such user: {ghost}"):
        await db.create_couple(ghost, a.id)
    assert await db.couple_of(a.id) is None


@pytest.mark.parametrize("position", ["first", "second"])
async def test_user_can_be_in_one_couple_only(
    db: Database, make_couple: CoupleFactory, position: str
) -> None:
    _, a, b = await make_couple()
    other = await db.create_user("dave")
    for taken in (a, b):
        pair = (taken.id, other.id) if position == "first" else (other.id, taken.id)
        with pytest.raises(ValueError, match=f"already in a couple: {taken.id}"):
            await db.create_couple(*pair)
    with pytest.raises(ValueError, match="already in a couple"):
        await db.create_couple(b.id, a.id)
    assert await db.couple_of(other.id) is None


async def test_concurrent_pairings_of_one_user_make_one_couple(db: Database) -> None:
    hub = await db.create_user("hub")
    others = [await db.create_user(f"o{i}") for i in range(8)]
    outcomes = await asyncio.gather(
        *(db.create_couple(hub.id, o.id) for o in others), return_exceptions=True
    )
    made = [o for o in outcomes if isinstance(o, Couple)]
    assert len(made) == 1
    assert all(isinstance(o, ValueError) for o in outcomes if not isinstance(o, Couple))
    assert await db.couple_of(hub.id) == made[0]


async def test_seed_couples(db: Database) -> None:
    seeded = await db.seed_couples(1000, name_prefix="load")
    assert len(seeded) == 1000
    couple, a, b = seeded[0]
    assert (couple.user1_id, couple.user2_id) == (a.id, b.id)
    assert (a.name, b.name) == ("load1a", "load1b")
    assert seeded[-1][1].name == "load1000a"
    ids = [u.id for _, x, y in seeded for u in (x, y)]
    assert len(set(ids)) == 2000
    found = await db.get_users(ids)
    assert len(found) == 2000
    assert found[b.id] == b
    last_couple, last_a, last_b = seeded[-1]
    assert await db.get_couple(last_couple.id) == last_couple
    assert await db.couple_of(last_b.id) == last_couple
    assert await db.couple_of(last_a.id) == last_couple


async def test_seed_couples_edge_cases(db: Database) -> None:
    assert await db.seed_couples(0) == []
    with pytest.raises(ValueError, match="negative"):
        await db.seed_couples(-1)
    with pytest.raises(ValueError, match="user name"):
        await db.seed_couples(1, name_prefix="x" * 100)
    assert await db.get_users([]) == {}
