"""What the application receives: frozen event classes, and the parser of the server's JSON.

The couple's stream is numbered by `seq`, shared by chat messages and the changes made to
them (edits, unsends, reactions, read marks): every payload with a seq is one step of the
stream, delivered once and in order (`Sequenced`). Payloads without one (typing, presence,
a live "deleted for me") are not stored in the stream and arrive as they come.

The server renders timestamps as local date-times without an offset (in its IEUM_TIMEZONE,
README "Payloads"); they are parsed as naive datetimes, or given `tz` when the caller knows
the server's zone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Final

import orjson

__all__ = [
    "ChatMessage",
    "Connected",
    "Disconnected",
    "ErrorEvent",
    "Event",
    "MalformedEvent",
    "MessageDeleted",
    "MessageEdited",
    "MessageUnsent",
    "Reaction",
    "ReactionChanged",
    "ReadReceipt",
    "ReplyPreview",
    "SendReceipt",
    "Sequenced",
    "SystemEvent",
    "error_event",
    "event_seq",
    "parse_event",
    "parse_timestamp",
    "payload_seq",
]

Reaction = tuple[str, tuple[uuid.UUID, ...]]
"""One emoji and the members who reacted with it, in the order they did."""


@dataclass(frozen=True, slots=True)
class ReplyPreview:
    """What a reply shows of the message it answers, as that message is now: its text (or
    a word for media or a sticker), none once it was unsent."""

    message_id: uuid.UUID
    sender_id: uuid.UUID | None
    type: str | None
    preview: str | None
    unsent: bool


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A stored chat message of the couple, delivered in `seq` order exactly once, as it is
    when sent (live) or now (replayed): edited, unsent (a tombstone without content, media or
    reactions), its reactions, the preview of the message it answers. The media fields are
    None where they do not apply (and for every message of a server without media)."""

    id: uuid.UUID
    couple_id: uuid.UUID
    seq: int
    sender_id: uuid.UUID | None
    """None for a NOTICE (from the app's backend, not a member)."""
    sender_name: str | None
    sender_profile_image: str | None
    content: str | None
    type: str
    """TEXT, IMAGE, AUDIO, VIDEO, FILE, STICKER or NOTICE."""
    image_url: str | None
    is_read: bool
    read_at: datetime | None
    created_at: datetime
    temp_id: str | None
    reply_to: ReplyPreview | None = None
    edited_at: datetime | None = None
    unsent: bool = False
    reactions: tuple[Reaction, ...] = ()
    """One entry per emoji, in the order each was first added."""
    as_of_seq: int | None = None
    """The stream position this state reflects (a replayed or history message read after
    changes made to it): a change with a seq at or below it is in it already. None: its
    own seq (live, or an older server)."""
    media_url: str | None = None
    """IMAGE, AUDIO, VIDEO, FILE: the uploaded file (an image's equals ``image_url``)."""
    thumbnail_url: str | None = None
    """IMAGE, VIDEO: a WebP of at most 320 px on the long side, when one could be made."""
    duration_ms: int | None = None
    """AUDIO, VIDEO."""
    file_name: str | None = None
    """FILE: the name it was uploaded with."""
    size: int | None = None
    """Bytes of the file."""
    width: int | None = None
    """IMAGE, VIDEO: pixels."""
    height: int | None = None


@dataclass(frozen=True, slots=True)
class ReadReceipt:
    """`reader_id` read these messages (only the ones that changed). `seq` is its place in
    the stream (None from a server older than the message lifecycle): replayed on resume, so
    a read on one device clears the unread marks on the reader's other devices."""

    reader_id: uuid.UUID
    message_ids: tuple[uuid.UUID, ...]
    seqs: tuple[int, ...]
    read_at: datetime
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class MessageEdited:
    """The sender changed the text of a TEXT message. `content` is None when the message was
    unsent since (its edits' text is erased; a MessageUnsent follows in the stream)."""

    couple_id: uuid.UUID
    seq: int
    message_id: uuid.UUID
    user_id: uuid.UUID
    temp_id: str | None
    content: str | None
    edited_at: datetime


@dataclass(frozen=True, slots=True)
class MessageUnsent:
    """The sender took the message back: it stays as a tombstone for both members."""

    couple_id: uuid.UUID
    seq: int
    message_id: uuid.UUID
    user_id: uuid.UUID
    temp_id: str | None
    unsent_at: datetime


@dataclass(frozen=True, slots=True)
class ReactionChanged:
    """`user_id` added (`added`) or removed one emoji on a message."""

    couple_id: uuid.UUID
    seq: int
    message_id: uuid.UUID
    user_id: uuid.UUID
    temp_id: str | None
    emoji: str
    added: bool


@dataclass(frozen=True, slots=True)
class MessageDeleted:
    """This member deleted the message for themselves (on any of their devices): it is gone
    from their view and history, not from the partner's. `seq` is set only when it stands in
    a replay where the message itself would have been."""

    couple_id: uuid.UUID
    message_id: uuid.UUID
    user_id: uuid.UUID
    deleted_at: datetime
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class SystemEvent:
    """USER_CONNECTED (a user's first session), USER_DISCONNECTED (their last), TYPING, and
    COUPLE_DISSOLVED (about the couple, without a user: the session ends right after)."""

    event: str
    user_id: uuid.UUID | None
    timestamp: datetime
    typing: bool | None = None


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """An error payload (`/user/queue/errors`) or a STOMP ERROR frame (`fatal`: the server
    closed that connection; the client reconnects)."""

    code: str
    message: str
    detail: str | None = None
    temp_id: str | None = None
    fatal: bool = False


@dataclass(frozen=True, slots=True)
class Connected:
    """A connection is up and subscribed; the stream resumes after `resumed_after_seq`."""

    session: str | None
    version: str
    resumed_after_seq: int | None


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection ended; the client reconnects in `retry_in` seconds."""

    reason: str
    retry_in: float


@dataclass(frozen=True, slots=True)
class SendReceipt:
    """The server's RECEIPT for a send or a change of a message: it is committed (durable)
    and, as the server de-duplicates by tempId, applied exactly once however many times it
    was sent."""

    temp_id: str
    attempts: int
    """How many times the SEND was written (more than 1 after reconnects or retries)."""


Sequenced = (
    ChatMessage | ReadReceipt | MessageEdited | MessageUnsent | ReactionChanged | MessageDeleted
)
"""The payloads that may hold a place in the stream (`event_seq` says whether one does)."""

Event = Sequenced | SystemEvent | ErrorEvent | Connected | Disconnected


def event_seq(event: object) -> int | None:
    """The event's place in the couple's stream; None for one outside it."""
    if isinstance(event, Sequenced):
        return event.seq
    return None


class MalformedEvent(ValueError):
    """A payload the SDK cannot read; `seq` is its place in the stream when it had a readable
    one (the client skips it there rather than resync on it forever)."""

    def __init__(self, reason: str, seq: int | None = None) -> None:
        super().__init__(reason)
        self.seq = seq


def parse_timestamp(text: str, tz: tzinfo | None = None) -> datetime:
    """`2024-01-11T10:10:00`, `2024-01-11T10:10:00.123` (any fraction) -> datetime."""
    value = datetime.fromisoformat(text)
    if tz is not None and value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise MalformedEvent(f"{key!r} must be a string")
    return value


def _opt_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise MalformedEvent(f"{key!r} must be a string or null")


def _bool(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise MalformedEvent(f"{key!r} must be a boolean")
    return value


def _as_uuid(value: object, key: str) -> uuid.UUID:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise MalformedEvent(f"{key!r} must hold UUIDs")


def _uuid(data: dict[str, Any], key: str) -> uuid.UUID:
    try:
        return uuid.UUID(_str(data, key))
    except ValueError:
        raise MalformedEvent(f"{key!r} is not a UUID") from None


def _opt_uuid(data: dict[str, Any], key: str) -> uuid.UUID | None:
    return None if data.get(key) is None else _uuid(data, key)


def _int(value: object, key: str) -> int:
    # bool is an int subclass; a `true` seq is a bug on the other side.
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedEvent(f"{key!r} must be an integer")
    return value


def _opt_int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    return None if value is None else _int(value, key)


def _time(data: dict[str, Any], key: str, tz: tzinfo | None) -> datetime:
    try:
        return parse_timestamp(_str(data, key), tz)
    except ValueError:
        raise MalformedEvent(f"{key!r} is not an ISO-8601 date-time") from None


def _opt_time(data: dict[str, Any], key: str, tz: tzinfo | None) -> datetime | None:
    return None if data.get(key) is None else _time(data, key, tz)


def _reply_to(value: object) -> ReplyPreview | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MalformedEvent("'replyTo' must be an object or null")
    return ReplyPreview(
        message_id=_uuid(value, "messageId"),
        sender_id=_opt_uuid(value, "senderId"),
        type=_opt_str(value, "type"),
        preview=_opt_str(value, "preview"),
        unsent=_bool(value, "unsent"),
    )


def _reactions(value: object) -> tuple[Reaction, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MalformedEvent("'reactions' must be a list")
    reactions: list[Reaction] = []
    for entry in value:
        if not isinstance(entry, dict):
            raise MalformedEvent("'reactions' must hold objects")
        users = entry.get("userIds")
        if not isinstance(users, list):
            raise MalformedEvent("'reactions[].userIds' must be a list")
        ids = tuple(_as_uuid(user, "reactions[].userIds") for user in users)
        reactions.append((_str(entry, "emoji"), ids))
    return tuple(reactions)


def _chat_message(data: dict[str, Any], tz: tzinfo | None) -> ChatMessage:
    return ChatMessage(
        id=_uuid(data, "id"),
        couple_id=_uuid(data, "coupleId"),
        seq=_int(data.get("seq"), "seq"),
        sender_id=_opt_uuid(data, "senderId"),
        sender_name=_opt_str(data, "senderName"),
        sender_profile_image=_opt_str(data, "senderProfileImage"),
        content=_opt_str(data, "content"),
        type=_str(data, "type"),
        image_url=_opt_str(data, "imageUrl"),
        is_read=_bool(data, "isRead"),
        read_at=_opt_time(data, "readAt", tz),
        created_at=_time(data, "createdAt", tz),
        temp_id=_opt_str(data, "tempId"),
        reply_to=_reply_to(data.get("replyTo")),
        edited_at=_opt_time(data, "editedAt", tz),
        unsent=_bool(data, "unsent"),
        reactions=_reactions(data.get("reactions")),
        as_of_seq=_opt_int(data, "asOfSeq"),
        media_url=_opt_str(data, "mediaUrl"),
        thumbnail_url=_opt_str(data, "thumbnailUrl"),
        duration_ms=_opt_int(data, "durationMs"),
        file_name=_opt_str(data, "fileName"),
        size=_opt_int(data, "size"),
        width=_opt_int(data, "width"),
        height=_opt_int(data, "height"),
    )


def _opt_seq(data: dict[str, Any]) -> int | None:
    value = data.get("seq")
    return None if value is None else _int(value, "seq")


def _read_receipt(data: dict[str, Any], tz: tzinfo | None) -> ReadReceipt:
    ids = data.get("messageIds", [])
    seqs = data.get("seqs", [])
    if not isinstance(ids, list) or not isinstance(seqs, list):
        raise MalformedEvent("'messageIds' and 'seqs' must be lists")
    return ReadReceipt(
        reader_id=_uuid(data, "readerId"),
        message_ids=tuple(_as_uuid(item, "messageIds") for item in ids),
        seqs=tuple(_int(item, "seqs") for item in seqs),
        read_at=_time(data, "readAt", tz),
        seq=_opt_seq(data),
    )


def _message_edited(data: dict[str, Any], tz: tzinfo | None) -> MessageEdited:
    return MessageEdited(
        couple_id=_uuid(data, "coupleId"),
        seq=_int(data.get("seq"), "seq"),
        message_id=_uuid(data, "messageId"),
        user_id=_uuid(data, "userId"),
        temp_id=_opt_str(data, "tempId"),
        content=_opt_str(data, "content"),
        edited_at=_time(data, "editedAt", tz),
    )


def _message_unsent(data: dict[str, Any], tz: tzinfo | None) -> MessageUnsent:
    return MessageUnsent(
        couple_id=_uuid(data, "coupleId"),
        seq=_int(data.get("seq"), "seq"),
        message_id=_uuid(data, "messageId"),
        user_id=_uuid(data, "userId"),
        temp_id=_opt_str(data, "tempId"),
        unsent_at=_time(data, "unsentAt", tz),
    )


def _reaction(data: dict[str, Any], tz: tzinfo | None) -> ReactionChanged:
    op = data.get("op")
    if op not in ("add", "remove"):
        raise MalformedEvent('\'op\' must be "add" or "remove"')
    return ReactionChanged(
        couple_id=_uuid(data, "coupleId"),
        seq=_int(data.get("seq"), "seq"),
        message_id=_uuid(data, "messageId"),
        user_id=_uuid(data, "userId"),
        temp_id=_opt_str(data, "tempId"),
        emoji=_str(data, "emoji"),
        added=op == "add",
    )


def _message_deleted(data: dict[str, Any], tz: tzinfo | None) -> MessageDeleted:
    return MessageDeleted(
        couple_id=_uuid(data, "coupleId"),
        message_id=_uuid(data, "messageId"),
        user_id=_uuid(data, "userId"),
        deleted_at=_time(data, "deletedAt", tz),
        seq=_opt_seq(data),
    )


def _system_event(data: dict[str, Any], tz: tzinfo | None) -> SystemEvent:
    typing = data.get("typing")
    if typing is not None and not isinstance(typing, bool):
        raise MalformedEvent("'typing' must be a boolean")
    return SystemEvent(
        event=_str(data, "event"),
        user_id=_opt_uuid(data, "userId"),
        timestamp=_time(data, "timestamp", tz),
        typing=typing,
    )


def error_event(data: dict[str, Any], *, fatal: bool = False) -> ErrorEvent:
    code = data.get("code")
    message = data.get("message")
    return ErrorEvent(
        code=code if isinstance(code, str) else "UNKNOWN",
        message=message if isinstance(message, str) else "",
        detail=_opt_str(data, "detail"),
        temp_id=_opt_str(data, "tempId"),
        fatal=fatal,
    )


_Parser = Callable[[dict[str, Any], tzinfo | None], Sequenced | SystemEvent]

_BY_TYPE: Final[dict[str, _Parser]] = {
    "READ_RECEIPT": _read_receipt,
    "MESSAGE_EDITED": _message_edited,
    "MESSAGE_UNSENT": _message_unsent,
    "REACTION": _reaction,
    "MESSAGE_DELETED": _message_deleted,
    "SYSTEM": _system_event,
}


def _object(body: bytes | str) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedEvent("body is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedEvent("body is not a JSON object")
    return data


def _seq_of(data: dict[str, Any]) -> int | None:
    seq = data.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def payload_seq(body: bytes | str) -> int | None:
    """The seq of any payload, read or not by this SDK (a newer server's event still takes
    its place in the stream); None when it has none or is not a JSON object."""
    try:
        return _seq_of(_object(body))
    except MalformedEvent:
        return None


def parse_event(
    body: bytes | str, tz: tzinfo | None = None
) -> Sequenced | SystemEvent | ErrorEvent | None:
    """One MESSAGE body of the couple topic, the user's event queue or the error queue; None
    for a payload type this SDK does not know (a newer server), raises MalformedEvent (with
    the payload's seq when it had one) for a broken known one."""
    data = _object(body)
    kind = data.get("type")
    if kind == "ERROR":
        return error_event(data)
    parser = _BY_TYPE.get(kind) if isinstance(kind, str) else None
    if parser is None:
        if "seq" not in data or "senderId" not in data:
            return None
        parser = _chat_message
    try:
        return parser(data, tz)
    except MalformedEvent as exc:
        seq = _seq_of(data)
        name = "chat message" if parser is _chat_message else str(kind)
        where = f" seq {seq}" if seq is not None else ""
        raise MalformedEvent(f"{name}{where}: {exc}", seq) from None
