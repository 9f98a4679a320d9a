"""RoomView: the stream applied into messages as the history shows them, without a server."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ieum_chat.client import (
    ChatMessage,
    Connected,
    MessageDeleted,
    MessageEdited,
    MessageUnsent,
    ReactionChanged,
    ReadReceipt,
    ReplyPreview,
    RoomView,
    SystemEvent,
)
from ieum_chat.client._view import PREVIEW_LENGTH

COUPLE = uuid.uuid4()
A, B = uuid.uuid4(), uuid.uuid4()
T0 = datetime(2024, 1, 11, 10, 10)


def message(
    seq: int,
    *,
    sender: uuid.UUID = A,
    content: str | None = None,
    type: str = "TEXT",
    reply_to: ReplyPreview | None = None,
    message_id: uuid.UUID | None = None,
) -> ChatMessage:
    return ChatMessage(
        id=message_id or uuid.uuid4(),
        couple_id=COUPLE,
        seq=seq,
        sender_id=sender,
        sender_name=None,
        sender_profile_image=None,
        content=f"m{seq}" if content is None and type == "TEXT" else content,
        type=type,
        image_url="https://cdn.example/a.jpg" if type == "IMAGE" else None,
        is_read=False,
        read_at=None,
        created_at=T0 + timedelta(seconds=seq),
        temp_id=f"t{seq}",
        reply_to=reply_to,
    )


def reply_to(quoted: ChatMessage, preview: str | None = None) -> ReplyPreview:
    return ReplyPreview(quoted.id, quoted.sender_id, quoted.type, preview or quoted.content, False)


def edited(seq: int, target: ChatMessage, content: str | None) -> MessageEdited:
    assert target.sender_id is not None  # only a member's own message is edited
    return MessageEdited(
        COUPLE, seq, target.id, target.sender_id, None, content, T0 + timedelta(minutes=seq)
    )


def unsent(seq: int, target: ChatMessage) -> MessageUnsent:
    assert target.sender_id is not None
    return MessageUnsent(COUPLE, seq, target.id, target.sender_id, None, T0 + timedelta(hours=1))


def reaction(
    seq: int, target: ChatMessage, emoji: str, user: uuid.UUID, added: bool = True
) -> ReactionChanged:
    return ReactionChanged(COUPLE, seq, target.id, user, None, emoji, added)


def preview_in(view: RoomView, message_id: uuid.UUID) -> ReplyPreview:
    held = view.get(message_id)
    assert held is not None
    assert held.reply_to is not None
    return held.reply_to


def view_of(*events: object) -> RoomView:
    view = RoomView()
    for event in events:
        view.apply(event)
    return view


def test_messages_by_id_in_seq_order() -> None:
    first, second = message(1), message(2)
    view = view_of(second, first)
    assert view.messages() == [first, second]
    assert len(view) == 2
    assert first.id in view
    assert view.get(second.id) == second
    assert view.find_temp_id("t2") == second
    assert view.find_temp_id("nope") is None
    assert view.last_seq == 2


def test_events_outside_the_stream_change_nothing() -> None:
    view = view_of(message(1))
    before = view.messages()
    assert not view.apply(SystemEvent("TYPING", B, T0, True))
    assert not view.apply(Connected("s", "1.2", 0))
    assert view.messages() == before


def test_edit_overwrites_text_and_time() -> None:
    m = message(1)
    view = view_of(m, edited(2, m, "first"), edited(3, m, "second"))
    held = view.get(m.id)
    assert held is not None
    assert (held.content, held.edited_at) == ("second", T0 + timedelta(minutes=3))
    assert view.last_seq == 3


def test_unsend_leaves_a_tombstone_without_reactions() -> None:
    m = message(1, type="IMAGE", content="caption")
    view = view_of(m, reaction(2, m, "❤️", B), unsent(3, m))
    assert view.get(m.id) == dataclasses.replace(
        m, content=None, image_url=None, reactions=(), unsent=True
    )


def test_unsend_of_a_voice_note_forgets_its_file() -> None:
    note = dataclasses.replace(
        message(1, type="AUDIO"),
        media_url="http://chat.example/uploads/c/n.weba",
        duration_ms=3200,
        size=5120,
    )
    held = view_of(note, unsent(2, note)).get(note.id)
    assert held is not None
    assert (held.media_url, held.duration_ms, held.size, held.unsent) == (None, None, None, True)


def test_unsend_keeps_the_edit_time_as_the_history_does() -> None:
    m = message(1)
    view = view_of(m, edited(2, m, "x"), unsent(3, m))
    held = view.get(m.id)
    assert held is not None
    assert (held.content, held.edited_at, held.unsent) == (None, T0 + timedelta(minutes=2), True)


def test_reactions_one_entry_per_emoji_in_first_added_order() -> None:
    m = message(1)
    view = view_of(
        m,
        reaction(2, m, "👍", A),
        reaction(3, m, "❤️", B),
        reaction(4, m, "👍", B),
        reaction(5, m, "👍", A, added=False),
    )
    held = view.get(m.id)
    assert held is not None
    assert held.reactions == (("👍", (B,)), ("❤️", (B,)))
    view.apply(reaction(6, m, "👍", B, added=False))
    view.apply(reaction(7, m, "👍", A))
    held = view.get(m.id)
    assert held is not None
    assert held.reactions == (("❤️", (B,)), ("👍", (A,)))


def test_reactions_are_idempotent() -> None:
    m = message(1)
    view = view_of(m, reaction(2, m, "👍", A))
    once = view.get(m.id)
    view.apply(reaction(3, m, "👍", A))  # already there
    view.apply(reaction(4, m, "❤️", A, added=False))  # never there
    assert view.get(m.id) == once


def test_read_receipt_marks_the_listed_messages() -> None:
    first, second, third = message(1), message(2), message(3)
    at = T0 + timedelta(days=1)
    view = view_of(first, second, third, ReadReceipt(B, (first.id, second.id), (1, 2), at, 4))
    assert [(m.is_read, m.read_at) for m in view.messages()] == [
        (True, at),
        (True, at),
        (False, None),
    ]
    assert view.last_seq == 4


def test_deleted_for_me_removes_the_message() -> None:
    first, second = message(1), message(2)
    view = view_of(first, second, MessageDeleted(COUPLE, first.id, A, T0))
    assert view.messages() == [second]
    # In a replay the message's place is taken by its MESSAGE_DELETED, with its seq.
    view.apply(MessageDeleted(COUPLE, uuid.uuid4(), A, T0, seq=3))
    assert view.last_seq == 3
    # A change to a message this member deleted (the partner reacting) is ignored.
    view.apply(reaction(4, first, "👍", B))
    assert view.messages() == [second]


def test_reply_preview_follows_edits_and_unsend_of_the_quoted_message() -> None:
    quoted = message(1)
    reply = message(2, sender=B, reply_to=reply_to(quoted))
    view = view_of(quoted, reply)
    view.apply(edited(3, quoted, "x" * (PREVIEW_LENGTH + 20)))
    shown = preview_in(view, reply.id)
    assert shown.preview == "x" * PREVIEW_LENGTH
    view.apply(unsent(4, quoted))
    shown = preview_in(view, reply.id)
    assert (shown.preview, shown.unsent) == (None, True)
    assert (shown.message_id, shown.sender_id) == (quoted.id, A)


def test_reply_preview_is_taken_from_the_quoted_message_held() -> None:
    """A reply rendered with a stale preview (the quoted message edited just before the
    reply was stored) shows the quoted message as the view holds it."""
    quoted = message(1)
    view = view_of(quoted, edited(2, quoted, "new"))
    stale = message(3, sender=B, reply_to=reply_to(quoted, "m1"))
    view.apply(stale)
    shown = preview_in(view, stale.id)
    assert shown.preview == "new"
    gone = message(4, sender=B, reply_to=reply_to(quoted, "new"))
    view.apply(unsent(5, quoted))
    view.apply(dataclasses.replace(gone, seq=6))
    shown = preview_in(view, gone.id)
    assert (shown.preview, shown.unsent) == (None, True)


def test_reply_to_a_message_not_held_keeps_the_servers_preview_and_follows_events() -> None:
    quoted = message(1)  # deleted for me, or before the view began: never applied
    reply = message(2, sender=B, reply_to=reply_to(quoted, "as sent"))
    view = view_of(reply)
    assert view.get(reply.id) == reply
    view.apply(edited(3, quoted, "edited"))
    shown = preview_in(view, reply.id)
    assert shown.preview == "edited"


def test_an_image_reply_preview_stays_as_the_server_wrote_it() -> None:
    quoted = message(1, type="IMAGE", content=None)
    reply = message(2, sender=B, reply_to=reply_to(quoted, "사진"))
    view = view_of(quoted, reply)
    assert view.get(reply.id) == reply


def test_a_message_seen_again_replaces_the_one_held() -> None:
    """A view loaded from the history, then given the replay of the same messages."""
    m = message(1)
    now = dataclasses.replace(m, content="edited", edited_at=T0)
    view = view_of(m, now)
    assert view.messages() == [now]


def test_max_messages_forgets_the_oldest() -> None:
    view = RoomView(max_messages=2)
    first, second, third = message(1), message(2), message(3)
    for m in (second, first, third):
        view.apply(m)
    assert view.messages() == [second, third]
    view.apply(edited(4, first, "ignored"))
    assert first.id not in view
    with pytest.raises(ValueError, match="positive"):
        RoomView(max_messages=0)


# -- reactions against a model: any mix of adds and removes, applied once or replayed ------

EMOJIS = ("👍", "❤️", "😂")
USERS = (A, B)

ops = st.lists(st.tuples(st.sampled_from(EMOJIS), st.sampled_from(USERS), st.booleans()))


def model(
    operations: list[tuple[str, uuid.UUID, bool]],
) -> tuple[tuple[str, tuple[uuid.UUID, ...]], ...]:
    """The server's rule, written as plainly as possible: insertion-ordered dicts."""
    entries: dict[str, list[uuid.UUID]] = {}
    for emoji, user, add in operations:
        users = entries.get(emoji, [])
        if add and user not in users:
            entries[emoji] = [*users, user]
        elif not add and user in users:
            users.remove(user)
            if not users:
                del entries[emoji]
    return tuple((emoji, tuple(users)) for emoji, users in entries.items())


@given(operations=ops)
def test_reactions_follow_the_servers_rule(operations: list[tuple[str, uuid.UUID, bool]]) -> None:
    m = message(1)
    view = view_of(
        m,
        *(reaction(i + 2, m, emoji, user, add) for i, (emoji, user, add) in enumerate(operations)),
    )
    held = view.get(m.id)
    assert held is not None
    assert held.reactions == model(operations)


@given(operations=ops)
def test_the_set_of_reactions_survives_a_replay_over_the_current_state(
    operations: list[tuple[str, uuid.UUID, bool]],
) -> None:
    """A replay sends the message as it is now, then its changes again: who reacted with
    what comes out as it is."""
    m = message(1)
    events = [reaction(i + 2, m, e, u, add) for i, (e, u, add) in enumerate(operations)]
    now = dataclasses.replace(m, reactions=model(operations))
    view = view_of(now, *events)
    held = view.get(m.id)
    assert held is not None
    assert {e: set(u) for e, u in held.reactions} == {e: set(u) for e, u in now.reactions}


def test_changes_a_replayed_message_shows_already_are_skipped() -> None:
    """A replay sends the message as it is now (``asOfSeq`` 5: A's 👍 removed and added
    again, then B's) and then the changes since its seq: those at or below 5 are in it and
    would move A's 👍 behind B's if applied again; a later one is applied."""
    view = RoomView()
    now = dataclasses.replace(message(1), reactions=(("👍", (A, B)),), as_of_seq=5, edited_at=T0)
    view.apply(now)
    for seq, user, added in ((2, A, True), (3, A, False), (4, A, True), (5, B, True)):
        view.apply(reaction(seq, now, "👍", user, added))
    view.apply(edited(3, now, "older text"))
    held = view.get(now.id)
    assert held is not None
    assert (held.reactions, held.content) == ((("👍", (A, B)),), "m1")
    view.apply(reaction(6, now, "❤️", B))
    view.apply(edited(7, now, "newer"))
    held = view.get(now.id)
    assert held is not None
    assert (held.reactions, held.content) == ((("👍", (A, B)), ("❤️", (B,))), "newer")
    assert view.last_seq == 7
