"""Rows as the rest of the application sees them: immutable, typed, free of SQLAlchemy.

A chat message's fields are listed once, in :class:`Message`; the store's column lists, its
insert parameters and the row converter (:func:`message_from_row`) are derived from it. (Its
``__init__``, written out since every message builds one, names them again; a unit test holds
it to them: see ``ieum_chat._build``.)

A couple's stream is numbered by ``seq``: chat messages (:class:`Message`) and the changes
made to them afterwards (:class:`Event`: an edit, an unsend, a reaction, read marks) share one
counter, so a device that replays the stream in seq order converges on the state history
shows. A change is asked for as a :class:`NewChange` and answered by :class:`Applied` or
:class:`Refused`. Hiding a message for oneself (delete for me) takes no seq: the partner's
stream must show no trace of it; it is a :class:`Hide`, positioned after the seq that was last
when it was made.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import orjson

# A message's id is time-ordered, any other row's random (see ieum_chat.ids).
from ieum_chat.ids import new_id
from ieum_chat.ids import new_ordered_id as new_message_id

__all__ = [
    "MAX_REACTIONS",
    "MESSAGE_FIELDS",
    "NEW_MESSAGE_FIELDS",
    "NOTICE",
    "SYSTEM_USER_ID",
    "SYSTEM_USER_NAME",
    "Appended",
    "Applied",
    "ChangeKind",
    "Changed",
    "Couple",
    "Event",
    "Hide",
    "Media",
    "Message",
    "NewChange",
    "NewMessage",
    "Reaction",
    "Refusal",
    "Refused",
    "RoomView",
    "Stored",
    "User",
    "message_from_row",
    "message_values",
    "new_id",
    "new_message_id",
    "reactions_from_json",
    "reactions_json",
]

# Distinct emojis one message may carry.
MAX_REACTIONS = 20

# The sender of notices (messages of type NOTICE from the app's backend): no member, the nil
# UUID, a users row of its own (revision 0008). The wire says ``"senderId": null``.
SYSTEM_USER_ID = uuid.UUID(int=0)
SYSTEM_USER_NAME = "이음"
NOTICE = "NOTICE"


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    name: str
    profile_image: str | None
    # When the account was deleted (naive UTC); a deleted user is no longer a user of the
    # chat, the row stays until the purge.
    deleted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Couple:
    id: uuid.UUID
    user1_id: uuid.UUID
    user2_id: uuid.UUID
    # When the couple ended (naive UTC): from then on nobody is a member of it.
    dissolved_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.dissolved_at is None

    @property
    def members(self) -> tuple[uuid.UUID, uuid.UUID]:
        return (self.user1_id, self.user2_id)

    def has_member(self, user_id: uuid.UUID) -> bool:
        return user_id in (self.user1_id, self.user2_id)

    def partner_of(self, user_id: uuid.UUID) -> uuid.UUID:
        return self.user2_id if user_id == self.user1_id else self.user1_id


@dataclass(frozen=True, slots=True)
class Reaction:
    """One emoji on a message and who put it there, in the order they did."""

    emoji: str
    user_ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True, slots=True)
class Media:
    """What the server learnt of a media message's file when it was uploaded and checked
    (the ``messages.media`` column's JSON, the wire's names)."""

    thumbnail_url: str | None = None
    duration_ms: int | None = None
    file_name: str | None = None
    size: int | None = None
    width: int | None = None
    height: int | None = None

    def to_json(self) -> str:
        return orjson.dumps(
            {
                wire: value
                for wire, name in _MEDIA_KEYS
                if (value := getattr(self, name)) is not None
            }
        ).decode()

    @classmethod
    def from_json(cls, text: str | None) -> Media | None:
        if not text:
            return None
        data = orjson.loads(text)
        return cls(**{name: data.get(wire) for wire, name in _MEDIA_KEYS})


_MEDIA_KEYS = (
    ("thumbnailUrl", "thumbnail_url"),
    ("durationMs", "duration_ms"),
    ("fileName", "file_name"),
    ("size", "size"),
    ("width", "width"),
    ("height", "height"),
)


@dataclass(init=False, slots=True, unsafe_hash=True)
class Message:
    """A stored chat message as it is now (edited, unsent, reacted to). Timestamps are naive
    UTC, as stored in ``TIMESTAMP`` columns. An unsent message keeps no content, image or
    reactions (a tombstone). Immutable: its fields are ``Final``, its ``__init__`` written
    out (a record every message builds; see ``ieum_chat._build``)."""

    id: Final[uuid.UUID]
    couple_id: Final[uuid.UUID]
    sender_id: Final[uuid.UUID]
    seq: Final[int]
    type: Final[str]
    content: Final[str | None]
    image_url: Final[str | None]
    is_read: Final[bool]
    read_at: Final[datetime | None]
    created_at: Final[datetime]
    temp_id: Final[str | None]
    reply_to_id: Final[uuid.UUID | None]
    edited_at: Final[datetime | None]
    unsent_at: Final[datetime | None]
    # In the column: a JSON array [{"emoji", "userIds"}], NULL for none (message_from_row).
    reactions: Final[tuple[Reaction, ...]]
    # The file of a media message (IMAGE, AUDIO, VIDEO, FILE) and what is known of it.
    media_url: Final[str | None]
    media: Final[Media | None]

    def __init__(  # noqa: PLR0917 - positional, as a dataclass's own __init__ is
        self,
        id: uuid.UUID,
        couple_id: uuid.UUID,
        sender_id: uuid.UUID,
        seq: int,
        type: str,
        content: str | None,
        image_url: str | None,
        is_read: bool,
        read_at: datetime | None,
        created_at: datetime,
        temp_id: str | None,
        reply_to_id: uuid.UUID | None = None,
        edited_at: datetime | None = None,
        unsent_at: datetime | None = None,
        reactions: tuple[Reaction, ...] = (),
        media_url: str | None = None,
        media: Media | None = None,
    ) -> None:
        self.id = id
        self.couple_id = couple_id
        self.sender_id = sender_id
        self.seq = seq
        self.type = type
        self.content = content
        self.image_url = image_url
        self.is_read = is_read
        self.read_at = read_at
        self.created_at = created_at
        self.temp_id = temp_id
        self.reply_to_id = reply_to_id
        self.edited_at = edited_at
        self.unsent_at = unsent_at
        self.reactions = reactions
        self.media_url = media_url
        self.media = media

    @property
    def unsent(self) -> bool:
        return self.unsent_at is not None


@dataclass(init=False, slots=True, unsafe_hash=True)
class NewMessage:
    """A message to append; ``seq`` is assigned by the store at commit. Immutable, its
    ``__init__`` written out (as :class:`Message`'s)."""

    id: Final[uuid.UUID]
    couple_id: Final[uuid.UUID]
    sender_id: Final[uuid.UUID]
    type: Final[str]
    content: Final[str | None]
    image_url: Final[str | None]
    temp_id: Final[str | None]
    created_at: Final[datetime]
    reply_to_id: Final[uuid.UUID | None]
    media_url: Final[str | None]
    media: Final[Media | None]

    def __init__(  # noqa: PLR0917 - positional, as a dataclass's own __init__ is
        self,
        id: uuid.UUID,
        couple_id: uuid.UUID,
        sender_id: uuid.UUID,
        type: str,
        content: str | None,
        image_url: str | None,
        temp_id: str | None,
        created_at: datetime,
        reply_to_id: uuid.UUID | None = None,
        media_url: str | None = None,
        media: Media | None = None,
    ) -> None:
        self.id = id
        self.couple_id = couple_id
        self.sender_id = sender_id
        self.type = type
        self.content = content
        self.image_url = image_url
        self.temp_id = temp_id
        self.created_at = created_at
        self.reply_to_id = reply_to_id
        self.media_url = media_url
        self.media = media

    def numbered(self, seq: int) -> Message:
        """The message as stored with ``seq``: unread. (Every field by name: this runs once
        per message stored, and a loop over the field names cost twice as much.)"""
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
            reply_to_id=self.reply_to_id,
            media_url=self.media_url,
            media=self.media,
        )


# Column order of every message row the store reads (SELECT lists, RETURNING, the PostgreSQL
# append function's result): the fields of Message, in order.
MESSAGE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Message))
# What the caller chooses (NewMessage), in order; also the append function's parameter order.
NEW_MESSAGE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(NewMessage))
_WIDTH = len(MESSAGE_FIELDS)
_IS_READ = MESSAGE_FIELDS.index("is_read")
_REACTIONS = MESSAGE_FIELDS.index("reactions")
_MEDIA = MESSAGE_FIELDS.index("media")


def message_from_row(row: Sequence[Any]) -> Message:
    """A row (SQLAlchemy's or asyncpg's) whose first columns are ``MESSAGE_FIELDS``, in order."""
    values = list(row[:_WIDTH])
    if values[_IS_READ] is None:  # the plan's schema allows NULL there
        values[_IS_READ] = False
    values[_REACTIONS] = reactions_from_json(values[_REACTIONS])
    values[_MEDIA] = Media.from_json(values[_MEDIA])
    return Message(*values)


def message_values(message: Message) -> dict[str, Any]:
    """The column values of ``message``, for an INSERT."""
    values = {name: getattr(message, name) for name in MESSAGE_FIELDS}
    values["reactions"] = reactions_json(message.reactions)
    values["media"] = message.media.to_json() if message.media is not None else None
    return values


def reactions_from_json(text: str | None) -> tuple[Reaction, ...]:
    if not text:
        return ()
    return tuple(
        Reaction(item["emoji"], tuple(uuid.UUID(u) for u in item["userIds"]))
        for item in orjson.loads(text)
    )


def reactions_json(reactions: Sequence[Reaction]) -> str | None:
    """The column's text: NULL when there are none (most messages)."""
    if not reactions:
        return None
    return orjson.dumps(
        [{"emoji": r.emoji, "userIds": [str(u) for u in r.user_ids]} for r in reactions]
    ).decode()


@dataclass(frozen=True, slots=True)
class RoomView:
    """A member's room as the store read it: the active couple, how many of the partner's
    messages the member has not read, the stream's position (what the last message's read
    state is rendered as of; the message was read after it) and the latest message the
    member has not hidden (None in an empty room)."""

    couple: Couple
    unread: int
    position: int
    last: Message | None


@dataclass(init=False, slots=True, unsafe_hash=True)
class Stored:
    """The outcome of one append: the stored row, and whether this call created it
    (``False`` when an earlier SEND with the same tempId had already stored it). Immutable,
    its ``__init__`` written out (as :class:`Message`'s)."""

    message: Final[Message]
    created: Final[bool]

    def __init__(self, message: Message, created: bool) -> None:
        self.message = message
        self.created = created


class Refusal(enum.Enum):
    """Why the store would not hold one message or change of a batch."""

    NOT_A_MEMBER = "no such couple, or the sender is not one of its members"
    DOES_NOT_FIT = "a field does not fit its column"
    NOT_FOUND = "no such message in this couple"
    FORBIDDEN = "only the message's sender may do that"
    WINDOW_EXPIRED = "too late to unsend the message"
    INVALID = "the message cannot take this change"


@dataclass(frozen=True, slots=True)
class Refused:
    """The outcome of one append or change the store refused: nothing of it is stored, and it
    takes no seq; the rest of its batch is stored all the same."""

    new: NewMessage | NewChange
    reason: Refusal
    detail: str


# What append_messages answers for each message of a batch.
Appended = Stored | Refused


class ChangeKind(enum.StrEnum):
    """What a change does; the stored events' ``kind``."""

    EDIT = "EDIT"
    UNSEND = "UNSEND"
    REACT = "REACT"
    READ = "READ"
    HIDE = "HIDE"  # delete for me: a Hide, not an event of the stream


@dataclass(frozen=True, slots=True)
class NewChange:
    """A change a member asks for. ``message_id`` names its message (every kind but READ,
    which names ``message_ids`` or ``up_to_seq``); ``content`` is an edit's new text;
    ``emoji`` and ``add`` a reaction's."""

    kind: ChangeKind
    couple_id: uuid.UUID
    actor_id: uuid.UUID
    created_at: datetime
    message_id: uuid.UUID | None = None
    temp_id: str | None = None
    content: str | None = None
    emoji: str | None = None
    add: bool = True
    message_ids: tuple[uuid.UUID, ...] | None = None
    up_to_seq: int | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A change in a couple's stream, with its own seq. ``data`` holds what the kind needs
    beyond the columns: EDIT ``content`` (None once the message is unsent), REACT ``emoji`` and
    ``op`` (add/remove), READ ``messageIds`` and ``seqs``."""

    couple_id: uuid.UUID
    seq: int
    kind: ChangeKind
    actor_id: uuid.UUID
    message_id: uuid.UUID | None
    temp_id: str | None
    created_at: datetime
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Hide:
    """A message hidden for one member (delete for me). ``position``: the couple's last seq
    when it was hidden; a device resuming after that seq is told."""

    user_id: uuid.UUID
    message_id: uuid.UUID
    couple_id: uuid.UUID
    position: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of one change. ``event``: the stream event it made (None when nothing
    changed: a reaction already there, read marks with nothing unread, a hide or unsend done
    before); ``created`` False when an earlier change with the same tempId had made it.
    ``hide``: what a HIDE stored. ``messages``: the rows the change touched, as they are now
    (READ: every message marked)."""

    change: NewChange
    event: Event | None
    created: bool
    messages: tuple[Message, ...] = ()
    hide: Hide | None = None


# What apply_changes answers for each change of a batch.
Changed = Applied | Refused
