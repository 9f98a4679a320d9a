"""Rows as the rest of the application sees them: frozen, typed, free of SQLAlchemy."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Couple", "Message", "NewMessage", "Stored", "User"]


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
        return Message(
            id=self.id,
            couple_id=self.couple_id,
            sender_id=self.sender_id,
            seq=seq,
            type=self.type,
            content=self.content,
            image_url=self.image_url,
            is_read=False,
            read_at=None,
            created_at=self.created_at,
            temp_id=self.temp_id,
        )


@dataclass(frozen=True, slots=True)
class Stored:
    """The outcome of one append: the stored row, and whether this call created it
    (``False`` when an earlier SEND with the same tempId had already stored it)."""

    message: Message
    created: bool
