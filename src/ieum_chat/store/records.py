"""Rows as the rest of the application sees them: frozen, typed, free of SQLAlchemy.

A chat message's fields are listed once, in :class:`Message`; the store's column lists, its
insert parameters and the row converter (:func:`message_from_row`) are derived from it.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "MESSAGE_FIELDS",
    "NEW_MESSAGE_FIELDS",
    "Appended",
    "Couple",
    "Message",
    "NewMessage",
    "Refusal",
    "Refused",
    "Stored",
    "User",
    "message_from_row",
]


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    name: str
    profile_image: str | None


@dataclass(frozen=True, slots=True)
class Couple:
    id: uuid.UUID
    user1_id: uuid.UUID
    user2_id: uuid.UUID

    @property
    def members(self) -> tuple[uuid.UUID, uuid.UUID]:
        return (self.user1_id, self.user2_id)

    def has_member(self, user_id: uuid.UUID) -> bool:
        return user_id in (self.user1_id, self.user2_id)

    def partner_of(self, user_id: uuid.UUID) -> uuid.UUID:
        return self.user2_id if user_id == self.user1_id else self.user1_id


@dataclass(frozen=True, slots=True)
class Message:
    """A stored chat message. Timestamps are naive UTC, as stored in ``TIMESTAMP`` columns."""

    id: uuid.UUID
    couple_id: uuid.UUID
    sender_id: uuid.UUID
    seq: int
    type: str
    content: str | None
    image_url: str | None
    is_read: bool
    read_at: datetime | None
    created_at: datetime
    temp_id: str | None


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append; ``seq`` is assigned by the store at commit."""

    id: uuid.UUID
    couple_id: uuid.UUID
    sender_id: uuid.UUID
    type: str
    content: str | None
    image_url: str | None
    temp_id: str | None
    created_at: datetime

    def numbered(self, seq: int) -> Message:
        """The message as stored with ``seq``: unread."""
        values = {name: getattr(self, name) for name in NEW_MESSAGE_FIELDS}
        return Message(seq=seq, is_read=False, read_at=None, **values)


# Column order of every message row the store reads (SELECT lists, RETURNING, the PostgreSQL
# append function's result): the fields of Message, in order.
MESSAGE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Message))
# What the caller chooses (NewMessage), in order; also the append function's parameter order.
NEW_MESSAGE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(NewMessage))
_WIDTH = len(MESSAGE_FIELDS)


def message_from_row(row: Sequence[Any]) -> Message:
    """A row (SQLAlchemy's or asyncpg's) whose first columns are ``MESSAGE_FIELDS``, in order."""
    message = Message(*row[:_WIDTH])
    if message.is_read is None:  # the plan's schema allows NULL there
        return dataclasses.replace(message, is_read=False)
    return message


@dataclass(frozen=True, slots=True)
class Stored:
    """The outcome of one append: the stored row, and whether this call created it
    (``False`` when an earlier SEND with the same tempId had already stored it)."""

    message: Message
    created: bool


class Refusal(enum.Enum):
    """Why the store would not hold one message of a batch."""

    NOT_A_MEMBER = "no such couple, or the sender is not one of its members"
    DOES_NOT_FIT = "a field does not fit its column"


@dataclass(frozen=True, slots=True)
class Refused:
    """The outcome of one append the store refused: nothing of it is stored, and it takes no
    seq; the rest of its batch is stored all the same."""

    new: NewMessage
    reason: Refusal
    detail: str


# What append_messages answers for each message of a batch.
Appended = Stored | Refused
