"""`RoomView`: one member's picture of the couple's messages, built from the stream alone.

It takes the events in the order the client delivers them and keeps each message as the
history (`GET /chat/rooms/{roomId}/messages`) shows it to that member: edited text and
`edited_at`, unsent tombstones, reactions, reply previews that follow the quoted message,
read marks, and without the messages the member deleted for themselves. No I/O: the client
feeds it (`ChatClient(view=RoomView())`), or the application does with what `events()`
yields.

A replay sends each message as it is now and then the changes made since, some of which the
message already shows; every change is applied so that doing it twice does what doing it
once did (an edit or an unsend overwrites, a reaction already there is not added again, one
absent is not removed), so the view converges on the history.
"""

from __future__ import annotations

import dataclasses
import heapq
import uuid
from collections.abc import Callable
from typing import Final

from ._events import (
    ChatMessage,
    MessageDeleted,
    MessageEdited,
    MessageUnsent,
    Reaction,
    ReactionChanged,
    ReadReceipt,
    ReplyPreview,
    event_seq,
)

__all__ = ["PREVIEW_LENGTH", "RoomView"]

PREVIEW_LENGTH: Final = 100
"""Characters of a quoted TEXT message a reply's preview shows (as the server renders it)."""

_Change = Callable[[ChatMessage], ChatMessage]


def _react(reactions: tuple[Reaction, ...], event: ReactionChanged) -> tuple[Reaction, ...]:
    """Add or remove one member's emoji: one entry per emoji in first-added order, an entry
    gone with its last member; a repeated add or a remove of nothing changes nothing."""
    out = list(reactions)
    index = next((i for i, (emoji, _) in enumerate(out) if emoji == event.emoji), None)
    users = out[index][1] if index is not None else ()
    if event.added:
        if event.user_id in users:
            return reactions
        if index is None:
            out.append((event.emoji, (event.user_id,)))
        else:
            out[index] = (event.emoji, (*users, event.user_id))
    else:
        if index is None or event.user_id not in users:
            return reactions
        left = tuple(u for u in users if u != event.user_id)
        if left:
            out[index] = (event.emoji, left)
        else:
            del out[index]
    return tuple(out)


class RoomView:
    """The messages of one couple as one member sees them, by id, in seq order.

    ``max_messages`` bounds it: past it the message with the lowest seq is forgotten (a
    change to it is then ignored; a reply to it keeps the preview the server sent).
    """

    __slots__ = ("_by_id", "_last_seq", "_max", "_order", "_replies")

    def __init__(self, max_messages: int | None = None) -> None:
        if max_messages is not None and max_messages < 1:
            raise ValueError("max_messages must be positive")
        self._max = max_messages
        self._by_id: dict[uuid.UUID, ChatMessage] = {}
        # (seq, id) of every message held, lazily cleaned: the oldest to forget first.
        self._order: list[tuple[int, uuid.UUID]] = []
        # quoted message id -> ids of the replies held that quote it
        self._replies: dict[uuid.UUID, set[uuid.UUID]] = {}
        self._last_seq: int | None = None

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._by_id

    @property
    def last_seq(self) -> int | None:
        """The highest seq applied (a message's or a change's); None before any."""
        return self._last_seq

    def get(self, message_id: uuid.UUID) -> ChatMessage | None:
        return self._by_id.get(message_id)

    def messages(self) -> list[ChatMessage]:
        """Every message held, in seq order, as the history lists them (``order=asc``)."""
        return sorted(self._by_id.values(), key=lambda m: m.seq)

    def find_temp_id(self, temp_id: str) -> ChatMessage | None:
        """The message sent with this tempId (its sender's), if held."""
        return next((m for m in self._by_id.values() if m.temp_id == temp_id), None)

    # -- applying events -------------------------------------------------------------------

    def apply(self, event: object) -> bool:
        """Apply one event, in the stream's order; False for one that does not touch
        messages (typing, presence, errors, connection events)."""
        if isinstance(event, ChatMessage):
            self._put(event)
        elif isinstance(event, MessageEdited | MessageUnsent | ReactionChanged) and _reflected(
            self._by_id.get(event.message_id), event.seq
        ):
            pass  # the message was read (replayed) after this change: it shows it already
        elif isinstance(event, MessageEdited):
            self._edited(event)
        elif isinstance(event, MessageUnsent):
            self._unsent(event)
        elif isinstance(event, ReactionChanged):
            self._update(event.message_id, lambda m: _with_reactions(m, _react(m.reactions, event)))
        elif isinstance(event, ReadReceipt):
            for message_id in event.message_ids:
                self._update(
                    message_id,
                    lambda m: dataclasses.replace(m, is_read=True, read_at=event.read_at),
                )
        elif isinstance(event, MessageDeleted):
            self._remove(event.message_id)
        else:
            return False
        seq = event_seq(event)
        if seq is not None and (self._last_seq is None or seq > self._last_seq):
            self._last_seq = seq
        return True

    def _put(self, message: ChatMessage) -> None:
        reply = message.reply_to
        if reply is not None:
            quoted = self._by_id.get(reply.message_id)
            if quoted is not None:
                # The server rendered the preview when it read the quoted message; the one
                # held here has every change up to this point of the stream applied.
                message = dataclasses.replace(message, reply_to=_preview_of(reply, quoted))
            self._replies.setdefault(reply.message_id, set()).add(message.id)
        old = self._by_id.get(message.id)
        if old is None or old.seq != message.seq:
            heapq.heappush(self._order, (message.seq, message.id))
        self._by_id[message.id] = message
        if self._max is not None:
            while len(self._by_id) > self._max:
                seq, message_id = heapq.heappop(self._order)
                held = self._by_id.get(message_id)
                if held is not None and held.seq == seq:
                    self._remove(message_id)

    def _edited(self, event: MessageEdited) -> None:
        self._update(
            event.message_id,
            lambda m: dataclasses.replace(m, content=event.content, edited_at=event.edited_at),
        )
        preview = event.content[:PREVIEW_LENGTH] if event.content is not None else None
        self._update_replies(event.message_id, preview=preview)

    def _unsent(self, event: MessageUnsent) -> None:
        # A tombstone keeps no trace of what was said: no text, no file, not even its name.
        self._update(
            event.message_id,
            lambda m: dataclasses.replace(
                m,
                content=None,
                image_url=None,
                media_url=None,
                thumbnail_url=None,
                duration_ms=None,
                file_name=None,
                size=None,
                width=None,
                height=None,
                reactions=(),
                unsent=True,
            ),
        )
        self._update_replies(event.message_id, preview=None, unsent=True)

    def _update_replies(
        self, quoted_id: uuid.UUID, *, preview: str | None, unsent: bool = False
    ) -> None:
        for reply_id in self._replies.get(quoted_id, ()):
            self._update(
                reply_id,
                lambda m: dataclasses.replace(
                    m,
                    reply_to=dataclasses.replace(m.reply_to, preview=preview, unsent=unsent)
                    if m.reply_to is not None
                    else None,
                ),
            )

    def _update(self, message_id: uuid.UUID, change: _Change) -> None:
        message = self._by_id.get(message_id)
        if message is not None:  # not held: hidden, forgotten, or before the view began
            self._by_id[message_id] = change(message)

    def _remove(self, message_id: uuid.UUID) -> None:
        message = self._by_id.pop(message_id, None)
        if message is not None and message.reply_to is not None:
            replies = self._replies.get(message.reply_to.message_id)
            if replies is not None:
                replies.discard(message_id)
                if not replies:
                    del self._replies[message.reply_to.message_id]


def _reflected(message: ChatMessage | None, seq: int | None) -> bool:
    """Whether ``message`` as held shows the change at ``seq`` already: it was rendered at a
    stream position (``asOfSeq``) at or past it. Re-applying would be harmless for an edit
    or an unsend, but would move a reaction removed and added again to the end."""
    return (
        message is not None
        and message.as_of_seq is not None
        and seq is not None
        and seq <= message.as_of_seq
    )


def _with_reactions(message: ChatMessage, reactions: tuple[Reaction, ...]) -> ChatMessage:
    return (
        message
        if reactions is message.reactions
        else dataclasses.replace(message, reactions=reactions)
    )


def _preview_of(reply: ReplyPreview, quoted: ChatMessage) -> ReplyPreview:
    """The preview of ``quoted`` as held: none once unsent, its text when TEXT (the only
    type whose text changes); an image's or a sticker's stays as the server wrote it."""
    if quoted.unsent:
        return dataclasses.replace(reply, preview=None, unsent=True)
    if quoted.type == "TEXT" and quoted.content is not None:
        return dataclasses.replace(reply, preview=quoted.content[:PREVIEW_LENGTH], unsent=False)
    return reply
