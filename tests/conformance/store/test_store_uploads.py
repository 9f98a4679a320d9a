"""Uploads and media messages, on every database: the day's quota under concurrent tickets,
the ready state, what the cleanup hands back (unnamed after the deadline, or doomed by an
unsend) and what it keeps for good, and a media message's fields round trip."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from ieum_chat.store import Couple, Database, User
from ieum_chat.store.records import (
    Applied,
    ChangeKind,
    Media,
    NewChange,
    NewMessage,
    Stored,
)
from ieum_chat.store.uploads import Upload, UploadState

CoupleFactory = Callable[[], Awaitable[tuple[Couple, User, User]]]

DAY = datetime(2024, 6, 1, 0, 0, 0)


def ticket(couple: Couple, user: User, size: int, *, at: datetime = DAY) -> Upload:
    name = secrets.token_hex(16)
    key = f"{couple.id}/{name}.m4a"
    return Upload(
        id=name,
        couple_id=couple.id,
        uploader_id=user.id,
        key=key,
        url=f"https://chat.example/uploads/{key}",
        kind="AUDIO",
        content_type="audio/mp4",
        size=size,
        file_name=None,
        state=UploadState.ISSUED,
        created_at=at,
        expires_at=at + timedelta(hours=1),
    )


def media_message(couple: Couple, sender: User, url: str) -> NewMessage:
    return NewMessage(
        id=uuid.uuid4(),
        couple_id=couple.id,
        sender_id=sender.id,
        type="AUDIO",
        content=None,
        image_url=None,
        temp_id=None,
        created_at=DAY + timedelta(minutes=5),
        media_url=url,
        media=Media(duration_ms=2040, size=33_000),
    )


async def test_the_quota_counts_the_days_tickets_of_the_couple_alone(
    db: Database, make_couple: CoupleFactory
) -> None:
    couple, a, b = await make_couple()
    other, c, _ = await make_couple()
    # yesterday's and another couple's bytes do not count
    yesterday = ticket(couple, b, 900, at=DAY - timedelta(hours=1))
    assert await db.issue_upload(yesterday, since=DAY - timedelta(days=1), daily_bytes=1000) is None
    assert await db.issue_upload(ticket(couple, a, 600), since=DAY, daily_bytes=1000) is None
    assert await db.issue_upload(ticket(other, c, 1000), since=DAY, daily_bytes=1000) is None
    refused = ticket(couple, b, 401)
    assert await db.issue_upload(refused, since=DAY, daily_bytes=1000) == 600
    assert await db.get_upload(refused.id) is None
    assert await db.issue_upload(ticket(couple, b, 400), since=DAY, daily_bytes=1000) is None
    assert await db.used_upload_bytes(couple.id, DAY) == 1000


async def test_concurrent_tickets_never_pass_the_quota(
    db: Database, make_couple: CoupleFactory
) -> None:
    couple, a, _ = await make_couple()
    outcomes = await asyncio.gather(
        *(db.issue_upload(ticket(couple, a, 100), since=DAY, daily_bytes=1000) for _ in range(25))
    )
    assert sum(outcome is None for outcome in outcomes) == 10
    assert await db.used_upload_bytes(couple.id, DAY) == 1000


async def test_an_upload_becomes_ready_once(db: Database, make_couple: CoupleFactory) -> None:
    couple, a, _ = await make_couple()
    upload = ticket(couple, a, 50_000)
    await db.issue_upload(upload, since=DAY, daily_bytes=10**9)
    assert await db.upload_by_url(upload.url) == upload
    media = Media(duration_ms=2040, size=33_000)
    ready = await db.finish_upload(upload.id, size=33_000, media=media, thumbnail_key=None)
    assert ready == dataclasses.replace(upload, state=UploadState.READY, size=33_000, media=media)
    assert ready is not None
    assert ready.published
    again = await db.finish_upload(upload.id, size=1, media=Media(duration_ms=1), thumbnail_key="x")
    assert again == ready
    assert await db.finish_upload("0" * 32, size=1, media=media, thumbnail_key=None) is None


async def test_the_sweep_keeps_what_a_message_names_and_hands_back_the_rest(
    db: Database, make_couple: CoupleFactory
) -> None:
    couple, a, _ = await make_couple()
    named, unnamed, fresh = (ticket(couple, a, 10) for _ in range(3))
    fresh = dataclasses.replace(fresh, expires_at=DAY + timedelta(days=2))
    for upload in (named, unnamed, fresh):
        await db.issue_upload(upload, since=DAY, daily_bytes=10**9)
    (stored,) = await db.append_messages([media_message(couple, a, named.url)])
    assert isinstance(stored, Stored)
    assert stored.message.media_url == named.url
    assert stored.message.media == Media(duration_ms=2040, size=33_000)

    swept = await db.sweep_uploads(DAY + timedelta(days=1))
    assert [u.id for u in swept] == [unnamed.id]
    kept = await db.get_upload(named.id)
    assert kept is not None
    assert kept.state is UploadState.KEPT
    assert await db.delete_uploads([u.id for u in swept]) == 1
    assert await db.sweep_uploads(DAY + timedelta(days=1)) == []
    assert await db.get_upload(fresh.id) is not None


async def test_unsending_a_media_message_dooms_its_upload(
    db: Database, make_couple: CoupleFactory
) -> None:
    couple, a, _ = await make_couple()
    upload = ticket(couple, a, 10)
    await db.issue_upload(upload, since=DAY, daily_bytes=10**9)
    (stored,) = await db.append_messages([media_message(couple, a, upload.url)])
    assert isinstance(stored, Stored)
    (applied,) = await db.apply_changes(
        [
            NewChange(
                ChangeKind.UNSEND,
                couple.id,
                a.id,
                DAY + timedelta(minutes=6),
                message_id=stored.message.id,
            )
        ]
    )
    assert isinstance(applied, Applied)
    (tombstone,) = applied.messages
    assert (tombstone.media_url, tombstone.media) == (None, None)
    (history,) = await db.get_messages(couple.id, limit=10)
    assert (history.media_url, history.media) == (None, None)
    # doomed at once, whatever its URL's expiry
    (doomed,) = await db.sweep_uploads(DAY)
    assert (doomed.id, doomed.state) == (upload.id, UploadState.DOOMED)


async def test_purging_a_couple_takes_its_uploads(db: Database, make_couple: CoupleFactory) -> None:
    couple, a, _ = await make_couple()
    upload = ticket(couple, a, 10)
    await db.issue_upload(upload, since=DAY, daily_bytes=10**9)
    await db.dissolve_couple(couple.id)
    assert await db.erase_couple(couple.id, datetime.now() + timedelta(days=1))
    assert await db.get_upload(upload.id) is None
