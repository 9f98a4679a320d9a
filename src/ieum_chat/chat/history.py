"""The read side of the chat: a couple's stream and history as one member sees them,
rendered once per entry (the gateway's replays, REST's answers, the export).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from ieum_chat.chat import codec
from ieum_chat.store import Database
from ieum_chat.store.records import Event, Message, User
from ieum_chat.store.stream import StreamItem

__all__ = ["History", "Page"]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of history: the messages rendered (their wire dicts), in the order asked."""

    messages: list[dict[str, Any]]
    has_more: bool
    """More messages lie past the last one of this page."""

    @property
    def next_cursor(self) -> int | None:
        """The seq to continue from (``before``, or ``after`` when ascending), if any more."""
        return int(self.messages[-1]["seq"]) if self.has_more else None


class History:
    """Reads and renders; ``user`` looks a sender up (the chat service's cache)."""

    def __init__(
        self,
        db: Database,
        user: Callable[[uuid.UUID], Awaitable[User | None]],
        zone: ZoneInfo,
    ) -> None:
        self.db = db
        self._user = user
        self.zone = zone

    async def last_seq(self, couple_id: uuid.UUID) -> int:
        """The last seq of the couple's stream committed so far, message or change (0 when
        there is none)."""
        return await self.db.stream_position(couple_id)

    async def replay(
        self, couple_id: uuid.UUID, after_seq: int, *, limit: int, viewer_id: uuid.UUID
    ) -> list[tuple[int, bytes]]:
        """The couple's stream after ``after_seq`` as ``viewer_id`` sees it, ascending, as
        (seq, wire JSON): messages as they are now, events, and a MESSAGE_DELETED (with the
        message's seq) for each message the viewer hid."""
        # Read before the page: the messages read after it reflect at least this position
        # (their asOfSeq), so a device may skip the page's changes at or below it; and the
        # page may come from the read replica only if it holds all of this (store.routing).
        mark, items = await self.db.read_stream(
            couple_id, viewer_id, after_seq=after_seq, limit=limit
        )
        return await self.render_stream(items, as_of=mark.last_seq)

    async def page(
        self,
        couple_id: uuid.UUID,
        viewer_id: uuid.UUID,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int,
        ascending: bool = False,
    ) -> Page:
        """Up to ``limit`` messages with ``after < seq < before``, newest first unless
        ``ascending``, as ``viewer_id`` sees them now (never one they hid): the history
        route's page, and the export's, rendered the same way."""
        # The mark, read before the page: its asOfSeq (and how far a read replica must have
        # replayed to answer it).
        mark, rows = await self.db.history_page(
            couple_id,
            viewer_id,
            after_seq=after,
            before_seq=before,
            limit=limit + 1,  # one more tells whether there are more
            ascending=ascending,
        )
        messages = await self.render_messages(rows[:limit], as_of=mark.last_seq)
        return Page(messages, has_more=len(rows) > limit)

    async def render_stream(
        self, items: list[StreamItem], *, as_of: int
    ) -> list[tuple[int, bytes]]:
        messages = [item for item in items if isinstance(item, Message)]
        senders, quoted = await self.message_context(messages)
        rendered: list[tuple[int, bytes]] = []
        for item in items:
            if isinstance(item, Message):
                sender = senders.get(item.sender_id)
                reply = quoted.get(item.reply_to_id) if item.reply_to_id is not None else None
                body = codec.message_json(item, sender, self.zone, reply, as_of=as_of)
                rendered.append((item.seq, body))
            elif isinstance(item, Event):
                rendered.append((item.seq, codec.event_json(item, self.zone)))
            else:
                body = codec.dumps(codec.hide_dict(item, self.zone, seq=item.position))
                rendered.append((item.position, body))
        return rendered

    async def render_messages(
        self, messages: list[Message], *, as_of: int | None = None
    ) -> list[dict[str, Any]]:
        """The wire form of stored messages as they are now (REST answers); ``as_of``: the
        stream position read before them (their ``asOfSeq``)."""
        senders, quoted = await self.message_context(messages)
        return [
            codec.message_dict(
                m,
                senders.get(m.sender_id),
                self.zone,
                quoted.get(m.reply_to_id) if m.reply_to_id is not None else None,
                as_of=as_of,
            )
            for m in messages
        ]

    async def message_context(
        self, messages: list[Message]
    ) -> tuple[dict[uuid.UUID, User], dict[uuid.UUID, Message]]:
        """What rendering these messages needs: their senders, and the messages they answer
        (as they are now)."""
        senders: dict[uuid.UUID, User] = {}
        for sender_id in {m.sender_id for m in messages}:
            user = await self._user(sender_id)
            if user is not None:
                senders[sender_id] = user
        reply_ids = {m.reply_to_id for m in messages if m.reply_to_id is not None}
        quoted = await self.db.messages_by_id(list(reply_ids)) if reply_ids else {}
        return senders, quoted

    async def hides_since(
        self,
        couple_id: uuid.UUID,
        user_id: uuid.UUID,
        position: int,
        *,
        after: tuple[int, uuid.UUID] | None,
        limit: int,
    ) -> list[tuple[tuple[int, uuid.UUID], bytes]]:
        """The user's hides made at ``position`` or later (a device resuming after that seq
        has not seen them), after the cursor ``after``, as (cursor, MESSAGE_DELETED JSON)."""
        hides = await self.db.hides_since(couple_id, user_id, position, after=after, limit=limit)
        return [
            ((h.position, h.message_id), codec.dumps(codec.hide_dict(h, self.zone))) for h in hides
        ]
