"""Changes of sent messages (edit, unsend, reactions, read marks, hides) and the couple stream
they join, on every database: numbered from the messages' counter, checked under its lock,
idempotent by tempId, replayed by seq as each member sees it."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pytest
from tests.support.appends import all_stored

from ieum_chat.store import Couple, Database, Message, NewMessage, User
from ieum_chat.store.records import (
    MAX_REACTIONS,
    Applied,
    Changed,
    ChangeKind,
    Event,
    Hide,
    NewChange,
    Reaction,
    Refusal,
    Refused,
)

CoupleFactory = Callable[[], Awaitable[tuple[Couple, User, User]]]
MessageFactory = Callable[..., NewMessage]
# After every message the factory makes (their created_at run from 2024-01-11 10:10:00).
LATER = datetime(2024, 1, 11, 11, 0)


def change(
    kind: ChangeKind,
    couple: Couple,
    actor: User,
    message: Message | None = None,
    *,
    at: datetime = LATER,
    **fields: object,
) -> NewChange:
    return NewChange(
        kind,
        couple.id,
        actor.id,
        at,
        message_id=message.id if message is not None else None,
        **fields,  # type: ignore[arg-type]
    )


def applied(result: Changed) -> Applied:
    assert isinstance(result, Applied), result
    return result


def refused(result: Changed, reason: Refusal) -> Refused:
    assert isinstance(result, Refused), result
    assert result.reason is reason, result
    return result


async def one(db: Database, new: NewChange, *, window: float = 86400.0) -> Changed:
    (result,) = await db.apply_changes([new], unsend_window=window)
    return result


async def send(
    db: Database, new_message: MessageFactory, couple: Couple, *senders: User, **kw: object
) -> list[Message]:
    stored = all_stored(await db.append_messages([new_message(couple, s, **kw) for s in senders]))
    return [s.message for s in stored]


async def current(db: Database, message: Message) -> Message | None:
    found = await db.messages_by_id([message.id])
    return found.get(message.id)


async def test_edit_numbers_an_event_after_the_messages(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    m1, _ = await send(db, new_message, couple, a, b)
    result = applied(await one(db, change(ChangeKind.EDIT, couple, a, m1, content="고침")))
    assert result.created
    assert result.event is not None
    assert (result.event.seq, result.event.kind, result.event.data) == (
        3,
        ChangeKind.EDIT,
        {"content": "고침"},
    )
    (edited,) = result.messages
    assert (edited.content, edited.edited_at, edited.seq) == ("고침", LATER, 1)
    assert await current(db, m1) == edited
    # the next message takes the seq after the event
    (m3,) = await send(db, new_message, couple, b)
    assert m3.seq == 4


@pytest.mark.parametrize(
    ("who", "kind", "reason"),
    [
        ("partner", ChangeKind.EDIT, Refusal.FORBIDDEN),
        ("partner", ChangeKind.UNSEND, Refusal.FORBIDDEN),
        ("stranger", ChangeKind.EDIT, Refusal.NOT_A_MEMBER),
        ("stranger", ChangeKind.REACT, Refusal.NOT_A_MEMBER),
        ("stranger", ChangeKind.HIDE, Refusal.NOT_A_MEMBER),
    ],
)
async def test_only_the_sender_edits_or_unsends_and_only_members_change(  # noqa: PLR0917
    db: Database,
    make_couple: CoupleFactory,
    new_message: MessageFactory,
    who: str,
    kind: ChangeKind,
    reason: Refusal,
) -> None:
    couple, a, b = await make_couple()
    (m1,) = await send(db, new_message, couple, a)
    actor = b if who == "partner" else await db.create_user("mallory")
    new = change(kind, couple, actor, m1, content="x", emoji="❤️")
    result = refused(await one(db, new), reason)
    assert result.new is new
    assert await current(db, m1) == m1
    (m2,) = await send(db, new_message, couple, b)
    assert m2.seq == 2  # the refusal took no seq


async def test_a_message_of_another_couple_is_not_found(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, _ = await make_couple()
    other, c, _ = await make_couple()
    (theirs,) = await send(db, new_message, other, c)
    for kind in (ChangeKind.EDIT, ChangeKind.UNSEND, ChangeKind.REACT, ChangeKind.HIDE):
        refused(
            await one(db, change(kind, couple, a, theirs, content="x", emoji="❤️")),
            Refusal.NOT_FOUND,
        )
    unknown = NewChange(ChangeKind.EDIT, couple.id, a.id, LATER, uuid.uuid4(), content="x")
    refused(await one(db, unknown), Refusal.NOT_FOUND)
    assert await current(db, theirs) == theirs


async def test_only_text_that_is_not_unsent_can_be_edited(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, _ = await make_couple()
    (sticker,) = await send(db, new_message, couple, a, type="STICKER")
    result = refused(
        await one(db, change(ChangeKind.EDIT, couple, a, sticker, content="x")), Refusal.INVALID
    )
    assert "TEXT" in result.detail
    (text,) = await send(db, new_message, couple, a)
    applied(await one(db, change(ChangeKind.UNSEND, couple, a, text)))
    refused(await one(db, change(ChangeKind.EDIT, couple, a, text, content="x")), Refusal.INVALID)


async def test_unsend_leaves_a_tombstone_and_erases_the_edits_text(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    (m1,) = await send(db, new_message, couple, a)
    applied(await one(db, change(ChangeKind.EDIT, couple, a, m1, content="secret")))
    applied(await one(db, change(ChangeKind.REACT, couple, b, m1, emoji="❤️")))
    result = applied(await one(db, change(ChangeKind.UNSEND, couple, a, m1)))
    assert result.event is not None
    assert result.event.seq == 4
    (tomb,) = result.messages
    assert (tomb.content, tomb.image_url, tomb.reactions, tomb.unsent_at) == (None, None, (), LATER)
    assert await current(db, m1) == tomb
    _, stream = await db.read_stream(couple.id, b.id, after_seq=0, limit=10)
    edits = [i for i in stream if isinstance(i, Event) and i.kind is ChangeKind.EDIT]
    assert [e.data for e in edits] == [{}]  # the edit's text is gone from the stream
    assert "secret" not in repr(stream)
    # unsending again changes nothing and makes no event
    again = applied(await one(db, change(ChangeKind.UNSEND, couple, a, m1)))
    assert again.event is None


async def test_unsend_only_within_the_window(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, _ = await make_couple()
    (m1,) = await send(db, new_message, couple, a)
    just_in = m1.created_at + timedelta(seconds=60)
    too_late = m1.created_at + timedelta(seconds=61)
    refused(
        await one(db, change(ChangeKind.UNSEND, couple, a, m1, at=too_late), window=60),
        Refusal.WINDOW_EXPIRED,
    )
    assert await current(db, m1) == m1
    applied(await one(db, change(ChangeKind.UNSEND, couple, a, m1, at=just_in), window=60))


async def test_reactions_one_per_emoji_per_user_in_order(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    (m1,) = await send(db, new_message, couple, a)

    async def react(user: User, emoji: str, add: bool = True) -> Applied:
        return applied(
            await one(db, change(ChangeKind.REACT, couple, user, m1, emoji=emoji, add=add))
        )

    assert (await react(b, "❤️")).event is not None
    assert (await react(a, "👍🏽")).event is not None
    assert (await react(a, "❤️")).event is not None
    assert (await react(a, "❤️")).event is None  # already there: nothing changes
    now = await current(db, m1)
    assert now is not None
    assert now.reactions == (Reaction("❤️", (b.id, a.id)), Reaction("👍🏽", (a.id,)))
    removed = await react(b, "❤️", add=False)
    assert removed.event is not None
    assert removed.event.data == {"emoji": "❤️", "op": "remove"}
    assert (await react(b, "❤️", add=False)).event is None  # not there: nothing changes
    assert (await react(a, "👍🏽", add=False)).messages[0].reactions == (Reaction("❤️", (a.id,)),)


async def test_at_most_twenty_different_reactions_and_none_on_a_tombstone(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    (m1,) = await send(db, new_message, couple, a)
    emojis = [chr(0x1F600 + i) for i in range(MAX_REACTIONS + 1)]
    batch = [change(ChangeKind.REACT, couple, b, m1, emoji=e) for e in emojis]
    results = await db.apply_changes(batch)
    assert all(isinstance(r, Applied) for r in results[:MAX_REACTIONS])
    refused(results[MAX_REACTIONS], Refusal.INVALID)
    # one more user on an emoji already there still fits
    applied(await one(db, change(ChangeKind.REACT, couple, a, m1, emoji=emojis[0])))
    applied(await one(db, change(ChangeKind.UNSEND, couple, a, m1)))
    refused(await one(db, change(ChangeKind.REACT, couple, b, m1, emoji="❤️")), Refusal.INVALID)


async def test_a_repeated_temp_id_is_applied_once(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    (m1,) = await send(db, new_message, couple, a)
    edit = change(ChangeKind.EDIT, couple, a, m1, content="v2", temp_id="e1")
    react = change(ChangeKind.REACT, couple, b, m1, emoji="❤️", temp_id="e1")  # b's own key
    results = await db.apply_changes([edit, edit, react])
    first, repeat, reaction = (applied(r) for r in results)
    assert first.created
    assert first.event is not None
    assert (repeat.created, repeat.event) == (False, first.event)
    assert reaction.created
    later = applied(await one(db, dataclasses.replace(edit, content="v3")))
    assert (later.created, later.event) == (False, first.event)
    assert later.messages[0].content == "v2"
    _, stream = await db.read_stream(couple.id, a.id, after_seq=0, limit=10)
    assert [i.seq if isinstance(i, Message | Event) else None for i in stream] == [1, 2, 3]


async def test_read_marks_are_events_and_skip_unsent_messages(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    m1, m2, m3 = await send(db, new_message, couple, a, a, a)
    applied(await one(db, change(ChangeKind.UNSEND, couple, a, m2)))
    assert await db.unread_count(couple.id, b.id) == 2
    read = applied(await one(db, change(ChangeKind.READ, couple, b, up_to_seq=3)))
    assert [m.id for m in read.messages] == [m1.id, m3.id]
    assert read.event is not None
    assert read.event.seq == 5
    assert read.event.data == {"messageIds": [str(m1.id), str(m3.id)], "seqs": [1, 3]}
    nothing = applied(await one(db, change(ChangeKind.READ, couple, b, up_to_seq=3)))
    assert (nothing.event, nothing.messages) == (None, ())
    assert await db.unread_count(couple.id, b.id) == 0


async def test_a_hide_is_per_member_takes_no_seq_and_shows_in_its_place(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    m1, m2 = await send(db, new_message, couple, a, b)
    result = applied(await one(db, change(ChangeKind.HIDE, couple, b, m1)))
    assert (result.event, result.created) == (None, True)
    assert result.hide == Hide(b.id, m1.id, couple.id, 2, LATER)
    again = applied(await one(db, change(ChangeKind.HIDE, couple, b, m1)))
    assert (again.created, again.hide) == (False, result.hide)
    (m3,) = await send(db, new_message, couple, a)
    assert m3.seq == 3

    mark, seen_by_b = await db.read_stream(couple.id, b.id, after_seq=0, limit=10)
    assert seen_by_b == [Hide(b.id, m1.id, couple.id, 1, LATER), m2, m3]
    assert (mark.couple_id, mark.viewer_id, mark.last_seq) == (couple.id, b.id, 3)
    assert (await db.read_stream(couple.id, a.id, after_seq=0, limit=10))[1] == [m1, m2, m3]
    history = await db.get_messages(couple.id, viewer_id=b.id)
    assert [m.seq for m in history] == [3, 2]
    assert [m.seq for m in await db.get_messages(couple.id, viewer_id=a.id)] == [3, 2, 1]
    room = await db.room_view(b.id)
    assert room is not None
    assert room.last == m3
    # an unread message the reader hid is not waiting to be read (m1 hidden, m3 not)
    assert await db.unread_count(couple.id, b.id) == 1
    applied(await one(db, change(ChangeKind.HIDE, couple, b, m3)))
    assert await db.unread_count(couple.id, b.id) == 0


async def test_hides_since_a_position_page_by_cursor(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    sent = await send(db, new_message, couple, *([a] * 5))
    await db.apply_changes([change(ChangeKind.HIDE, couple, b, m) for m in sent[:3]])
    (m6,) = await send(db, new_message, couple, a)
    applied(await one(db, change(ChangeKind.HIDE, couple, b, sent[3])))
    all_hides = await db.hides_since(couple.id, b.id, 0)
    at_five = sorted((5, m.id) for m in sent[:3])
    assert [(h.position, h.message_id) for h in all_hides] == [*at_five, (6, sent[3].id)]
    first = await db.hides_since(couple.id, b.id, 5, limit=2)
    cursor = (first[-1].position, first[-1].message_id)
    rest = await db.hides_since(couple.id, b.id, 5, after=cursor, limit=10)
    assert first + rest == all_hides
    assert await db.hides_since(couple.id, b.id, 7) == []
    assert await db.hides_since(couple.id, a.id, 0) == []
    assert m6.seq == 6


async def test_the_stream_merges_messages_and_events_by_seq_in_pages(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    expected: list[int] = []
    for _ in range(4):
        (m,) = await send(db, new_message, couple, a)
        result = applied(await one(db, change(ChangeKind.REACT, couple, b, m, emoji="❤️")))
        assert result.event is not None
        expected += [m.seq, result.event.seq]
    assert expected == list(range(1, 9))
    seen: list[int] = []
    after = 0
    while True:
        _, page = await db.read_stream(couple.id, a.id, after_seq=after, limit=3)
        seqs = [i.seq if isinstance(i, Message | Event) else i.position for i in page]
        seen += seqs
        if len(page) < 3:
            break
        after = seqs[-1]
    assert seen == expected
    assert await db.stream_position(couple.id) == 8
    assert await db.stream_position(uuid.uuid4()) == 0
    # messages come as they are now: the reactions are on them already
    first = (await db.read_stream(couple.id, a.id, after_seq=0, limit=1))[1][0]
    assert isinstance(first, Message)
    assert first.reactions == (Reaction("❤️", (b.id,)),)


async def test_a_change_right_after_its_message_in_one_batch_and_concurrent_changes(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    """Concurrent batches on one couple (two connections on PostgreSQL) take the counter lock
    in turn: every seq once, in one order, and the edit/unsend race has one outcome."""
    couple, a, b = await make_couple()
    (m1,) = await send(db, new_message, couple, a)
    edit = change(ChangeKind.EDIT, couple, a, m1, content="edited")
    unsend = change(ChangeKind.UNSEND, couple, a, m1)
    reactions = [change(ChangeKind.REACT, couple, b, m1, emoji=chr(0x1F600 + i)) for i in range(5)]
    results = await asyncio.gather(
        db.apply_changes([edit]),
        db.apply_changes([unsend]),
        *(db.apply_changes([r]) for r in reactions),
    )
    (edit_result,), (unsend_result,) = results[0], results[1]
    assert isinstance(unsend_result, Applied)
    final = await current(db, m1)
    assert final is not None
    assert final.unsent
    assert (final.content, final.reactions) == (None, ())
    if isinstance(edit_result, Refused):
        assert edit_result.reason is Refusal.INVALID  # the unsend came first
    _, stream = await db.read_stream(couple.id, a.id, after_seq=0, limit=20)
    seqs = [i.seq for i in stream if isinstance(i, Message | Event)]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_a_reply_is_stored_with_its_quoted_message(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    couple, a, b = await make_couple()
    (m1,) = await send(db, new_message, couple, a)
    reply = dataclasses.replace(new_message(couple, b, "답장"), reply_to_id=m1.id)
    (stored,) = all_stored(await db.append_messages([reply]))
    assert stored.message.reply_to_id == m1.id
    (page,) = await db.get_messages(couple.id, after_seq=1)
    assert page.reply_to_id == m1.id
    assert await db.messages_by_id([m1.id, uuid.uuid4()]) == {m1.id: m1}


async def test_one_batch_sees_its_own_earlier_changes(
    db: Database, make_couple: CoupleFactory, new_message: MessageFactory
) -> None:
    """Changes of one batch apply in order on the messages as the batch left them: an edit
    then an unsend erases the edit's text as it is stored; a read after an unsend skips it;
    a reaction after a hide of the same message still applies (a hide is per member)."""
    couple, a, b = await make_couple()
    m1, m2 = await send(db, new_message, couple, a, a)
    results = await db.apply_changes(
        [
            change(ChangeKind.EDIT, couple, a, m1, content="secret"),
            change(ChangeKind.UNSEND, couple, a, m1),
            change(ChangeKind.READ, couple, b, up_to_seq=2),
            change(ChangeKind.HIDE, couple, b, m2),
            change(ChangeKind.REACT, couple, b, m2, emoji="👍"),
            change(ChangeKind.REACT, couple, a, m1, emoji="👍"),
        ]
    )
    edit, unsend, read, hide, react, late = results
    assert [applied(r).event.seq for r in (edit, unsend, read, react)] == [3, 4, 5, 6]  # type: ignore[union-attr]
    assert [m.id for m in applied(read).messages] == [m2.id]
    assert applied(hide).hide is not None
    refused(late, Refusal.INVALID)  # m1 was unsent earlier in the batch
    now = await db.messages_by_id([m1.id, m2.id])
    assert (now[m1.id].unsent, now[m1.id].content, now[m1.id].is_read) == (True, None, False)
    assert (now[m2.id].is_read, now[m2.id].reactions) == (True, (Reaction("👍", (b.id,)),))
    _, stream = await db.read_stream(couple.id, a.id, after_seq=2, limit=10)
    assert [(i.kind, i.data) for i in stream if isinstance(i, Event)][:2] == [
        (ChangeKind.EDIT, {}),
        (ChangeKind.UNSEND, {}),
    ]
