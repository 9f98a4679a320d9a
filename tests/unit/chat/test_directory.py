"""The chat service forgets cached users and couples when the directory feed says they
changed, and reports the access that ended; a lookup racing a change never caches the old
row; what it does cache shares the objects the cache holds already."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from typing import Any

import pytest

from ieum_chat.chat.directory import Revocation
from ieum_chat.chat.service import ChatService
from ieum_chat.errors import Unauthorized
from ieum_chat.store import Couple
from tests.unit.chat.conftest import ChatFactory


def _sql(url: str, statement: str, *ids: uuid.UUID) -> None:
    """SQL from another process (ids as SQLite stores them: 32 hex digits)."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.execute(statement, [i.hex for i in ids])


def _cached(service: ChatService, user_id: uuid.UUID, couple_id: uuid.UUID) -> bool:
    """Whether the service's membership cache holds ``user_id`` in ``couple_id``."""
    couple = service._couples.get(couple_id)
    return couple is not None and couple.has_member(user_id)


async def test_a_deleted_couple_is_forgotten_and_reported(make_chat: ChatFactory) -> None:
    reported: list[Revocation] = []
    async with make_chat() as chat:
        await chat.service.directory.close()  # these tests poll by hand
        chat.service.set_revocation_handler(reported.append)
        couple_id = chat.couple.id
        await chat.service.member_couple(chat.a.id, couple_id)
        assert _cached(chat.service, chat.a.id, couple_id)
        _sql(chat.url, "DELETE FROM couples WHERE id = ?", couple_id)
        assert _cached(chat.service, chat.a.id, couple_id)  # not yet read
        revocation = await chat.service.directory.poll()
        assert not _cached(chat.service, chat.a.id, couple_id)
        with pytest.raises(Unauthorized):
            await chat.service.member_couple(chat.a.id, couple_id)
    assert reported == [revocation]
    assert revocation is not None
    assert revocation.couple_revoked(chat.a.id, couple_id)
    assert revocation.couple_revoked(chat.b.id, couple_id)
    assert not revocation.user_revoked(chat.a.id)


async def test_a_deleted_user_is_reported_and_a_renamed_one_only_forgotten(
    make_chat: ChatFactory,
) -> None:
    async with make_chat() as chat:
        await chat.service.directory.close()  # these tests poll by hand
        assert await chat.service.user(chat.b.id) == chat.b
        _sql(chat.url, "UPDATE users SET name = 'renamed' WHERE id = ?", chat.b.id)
        assert await chat.service.directory.poll() is None  # nobody lost access
        renamed = await chat.service.user(chat.b.id)
        assert renamed is not None
        assert renamed.name == "renamed"

        loner = await chat.db.create_user("loner")
        assert await chat.service.user(loner.id) == loner
        await chat.service.directory.poll()
        _sql(chat.url, "DELETE FROM users WHERE id = ?", loner.id)
        revocation = await chat.service.directory.poll()
        assert revocation is not None
        assert revocation.user_revoked(loner.id)
        assert await chat.service.user(loner.id) is None


async def test_a_lookup_racing_a_change_does_not_cache_the_old_row(
    make_chat: ChatFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_chat() as chat:
        service = chat.service
        real = chat.db.get_couple

        async def read_then_change(couple_id: uuid.UUID) -> Couple | None:
            row = await real(couple_id)  # the row as it was...
            service._forget(set(), {couple_id})  # ...then the feed reports a change
            return row

        monkeypatch.setattr(chat.db, "get_couple", read_then_change)
        await service.member_couple(chat.a.id, chat.couple.id)
        assert not _cached(service, chat.a.id, chat.couple.id)


async def test_both_members_lookups_share_one_couple_record_and_the_users_ids(
    make_chat: ChatFactory,
) -> None:
    """The two members subscribing at once both miss the cache and read the couple: they
    get one record, whose member ids are the cached users' own id objects (an idle session
    keeps the record for as long as it is connected)."""
    async with make_chat() as chat:
        service = chat.service
        a, b = await service.user(chat.a.id), await service.user(chat.b.id)
        assert a is not None
        assert b is not None
        first, second = await asyncio.gather(
            service.member_couple(chat.a.id, chat.couple.id),
            service.member_couple(chat.b.id, chat.couple.id),
        )
        assert first is second
        assert first == chat.couple
        assert {id(first.user1_id), id(first.user2_id)} == {id(a.id), id(b.id)}


def test_a_revocation_names_who_lost_which_couple() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    gone, repaired, untouched = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    couples: dict[uuid.UUID, Any] = {gone: None, repaired: Couple(repaired, c, b)}
    revocation = Revocation(frozenset({a}), couples)
    assert revocation.user_revoked(a)
    assert not revocation.user_revoked(b)
    assert revocation.couple_revoked(b, gone)
    assert revocation.couple_revoked(a, repaired)
    assert not revocation.couple_revoked(b, repaired)
    assert not revocation.couple_revoked(a, untouched)
