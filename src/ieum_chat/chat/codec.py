"""The JSON the server puts on the wire, serialised once per event with orjson.

Timestamps are ISO-8601 local date-times without an offset, rendered in ``IEUM_TIMEZONE``,
so that Kotlin's ``LocalDateTime.parse`` accepts them (the plan's format).

A message is rendered as it is now (edited, unsent: a tombstone without content or image,
its reactions, the preview of the message it answers). Each stored change is one event with
its seq (:func:`event_dict`); a hidden message is a ``MESSAGE_DELETED`` for its member only
(:func:`hide_dict`).

Ids stay ``uuid.UUID`` in the dicts: orjson writes one as ``str()`` does (lowercase, with
hyphens), without a string made first (``str()`` of a ``uuid.UUID`` takes about 0.5 µs, a
quarter of what all of a message's JSON now takes). Every dict here is for :func:`dumps`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import orjson

from ieum_chat.store.records import (
    SYSTEM_USER_ID,
    ChangeKind,
    Event,
    Hide,
    Media,
    Message,
    User,
)

__all__ = [
    "PREVIEW_LENGTH",
    "dumps",
    "event_dict",
    "event_json",
    "format_timestamp",
    "hide_dict",
    "message_dict",
    "message_json",
    "reply_preview",
    "system_json",
]

# Characters of a quoted TEXT message shown in a reply's preview.
PREVIEW_LENGTH = 100
# What a reply's preview says for a message without text of its own (the plan's Korean).
_PREVIEW_BY_TYPE = {
    "IMAGE": "사진",
    "STICKER": "이모티콘",
    "AUDIO": "음성 메시지",
    "VIDEO": "동영상",
    "FILE": "파일",
}
# Messages that carry a file, whose captions preview them (and which carry the media keys).
_MEDIA = frozenset({"IMAGE", "AUDIO", "VIDEO", "FILE"})


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default)


def _default(value: object) -> str:
    """What orjson does not write itself: ids of ``uuid.UUID``'s subclasses (asyncpg reads
    its own), which ``str()`` writes as orjson writes the class itself."""
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError  # orjson names the type


def format_timestamp(value: datetime, zone: ZoneInfo) -> str:
    """Naive UTC (as stored) -> local date-time in ``zone``, millisecond precision: what
    ``isoformat(timespec="milliseconds")`` writes (the fraction cut, not rounded), put
    together here from the fields and the digits of :data:`_TWO`. ``isoformat()`` formats
    through ``sprintf``, about 7,000 instructions a call: 70 % of what rendering a timestamp
    took."""
    local = value + _OFFSETS.at(value, zone)
    year = local.year
    milli = local.microsecond // 1000
    return (
        f"{_TWO[year // 100]}{_TWO[year % 100]}-{_TWO[local.month]}-{_TWO[local.day]}"
        f"T{_TWO[local.hour]}:{_TWO[local.minute]}:{_TWO[local.second]}"
        f".{_DIGITS[milli // 100]}{_TWO[milli % 100]}"
    )


# Two digits for each number below 100, and one for each below 10.
_TWO: Final = tuple(f"{n:02d}" for n in range(100))
_DIGITS: Final = "0123456789"


class _ZoneOffsets:
    """A zone's UTC offset at naive UTC instants, looked up once an hour of UTC: the last
    hour looked up is kept with its offset (in one object, replaced whole, so that a thread
    never sees one hour's bounds with another's offset). This runs for every message
    rendered, and the lookup (with its two ``replace()`` calls) costs twice what the
    addition and ``isoformat()`` do."""

    def __init__(self) -> None:
        self.kept = _Hour(None, datetime.min, timedelta(0))

    def at(self, value: datetime, zone: ZoneInfo) -> timedelta:
        kept = self.kept
        if kept.zone is zone and kept.start <= value < kept.end:
            return kept.offset
        start = value.replace(minute=0, second=0, microsecond=0)
        offset = _utc_offset(start, zone)
        # No zone changes its offset twice within an hour: the same offset at the hour's
        # first and last instant is the offset all through it.
        if _utc_offset(start + _HOUR - _TICK, zone) != offset:  # a change within: not kept
            return _utc_offset(value, zone)
        self.kept = _Hour(zone, start, offset)
        return offset


class _Hour:
    """An hour of UTC (naive, from ``start``, its end excluded) throughout which ``zone``
    is ``offset`` ahead of UTC."""

    def __init__(self, zone: ZoneInfo | None, start: datetime, offset: timedelta) -> None:
        self.zone = zone
        self.start = start
        self.end = start + _HOUR
        self.offset = offset


_HOUR = timedelta(hours=1)
_TICK = timedelta(microseconds=1)
_OFFSETS: Final = _ZoneOffsets()


def _utc_offset(value: datetime, zone: ZoneInfo) -> timedelta:
    # What astimezone does from UTC, without its conversion to UTC first.
    offset = zone.fromutc(value.replace(tzinfo=zone)).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return offset


def _time(value: datetime | None, zone: ZoneInfo) -> str | None:
    return format_timestamp(value, zone) if value is not None else None


def reply_preview(message_id: uuid.UUID, quoted: Message | None) -> dict[str, Any]:
    """``replyTo`` of a message answering ``quoted``: who wrote it, its type and a preview
    that follows its edits; an unsent (or erased: ``quoted`` None) message shows none."""
    if quoted is None or quoted.unsent:
        preview = None
    elif quoted.type == "TEXT":
        preview = (quoted.content or "")[:PREVIEW_LENGTH]
    else:
        preview = quoted.content if quoted.type in _MEDIA and quoted.content else None
        preview = preview[:PREVIEW_LENGTH] if preview else _PREVIEW_BY_TYPE.get(quoted.type)
    return {
        "messageId": message_id,
        "senderId": _sender_id(quoted.sender_id) if quoted is not None else None,
        "type": quoted.type if quoted is not None else None,
        "preview": preview,
        "unsent": quoted is None or quoted.unsent,
    }


def _sender_id(sender_id: uuid.UUID) -> uuid.UUID | None:
    """A member's id; ``None`` for the system sender of notices."""
    return None if sender_id == SYSTEM_USER_ID else sender_id


_NO_MEDIA = Media()


def message_dict(
    message: Message,
    sender: User | None,
    zone: ZoneInfo,
    quoted: Message | None = None,
    *,
    as_of: int | None = None,
) -> dict[str, Any]:
    """Every field of the plan's server message, plus ``seq`` and what the message became:
    ``editedAt``, ``unsent``, ``reactions``, ``replyTo`` (``quoted``: the message it answers,
    as it is now). ``asOfSeq``: the stream position this state reflects (``as_of``, when it
    was read from the store for a replay or a history page; else its own seq): a change with
    a seq at or below it is in it already, and a device applying the stream skips it.
    A media message (IMAGE, AUDIO, VIDEO, FILE) also has ``mediaUrl`` and what is known of
    its file (null where it does not apply); other types have none of those keys."""
    fields = {
        "id": message.id,
        "coupleId": message.couple_id,
        "seq": message.seq,
        "senderId": _sender_id(message.sender_id),
        "senderName": sender.name if sender else None,
        "senderProfileImage": sender.profile_image if sender else None,
        "content": message.content,
        "type": message.type,
        "imageUrl": message.image_url,
        "isRead": message.is_read,
        "readAt": format_timestamp(message.read_at, zone) if message.read_at else None,
        "createdAt": format_timestamp(message.created_at, zone),
        "tempId": message.temp_id,
        "replyTo": (
            reply_preview(message.reply_to_id, quoted) if message.reply_to_id is not None else None
        ),
        "editedAt": _time(message.edited_at, zone),
        "unsent": message.unsent,
        "reactions": [{"emoji": r.emoji, "userIds": list(r.user_ids)} for r in message.reactions],
        "asOfSeq": max(as_of, message.seq) if as_of is not None else message.seq,
    }
    if message.type in _MEDIA:
        media = message.media or _NO_MEDIA
        fields["mediaUrl"] = message.media_url
        fields["thumbnailUrl"] = media.thumbnail_url
        fields["durationMs"] = media.duration_ms
        fields["fileName"] = media.file_name
        fields["size"] = media.size
        fields["width"] = media.width
        fields["height"] = media.height
    return fields


def message_json(
    message: Message,
    sender: User | None,
    zone: ZoneInfo,
    quoted: Message | None = None,
    *,
    as_of: int | None = None,
) -> bytes:
    return dumps(message_dict(message, sender, zone, quoted, as_of=as_of))


def event_dict(event: Event, zone: ZoneInfo) -> dict[str, Any]:
    """The wire form of a stored change: MESSAGE_EDITED, MESSAGE_UNSENT, REACTION or
    READ_RECEIPT, each with its ``seq`` in the couple's stream."""
    base: dict[str, Any] = {"coupleId": event.couple_id, "seq": event.seq}
    at = format_timestamp(event.created_at, zone)
    data = event.data
    if event.kind is ChangeKind.READ:
        return {
            "type": "READ_RECEIPT",
            **base,
            "readerId": event.actor_id,
            "messageIds": data.get("messageIds", []),
            "seqs": data.get("seqs", []),
            "readAt": at,
        }
    base |= {
        "messageId": event.message_id,
        "userId": event.actor_id,
        "tempId": event.temp_id,
    }
    if event.kind is ChangeKind.EDIT:
        # content None: the message was unsent since, and its edits' text erased
        return {"type": "MESSAGE_EDITED", **base, "content": data.get("content"), "editedAt": at}
    if event.kind is ChangeKind.UNSEND:
        return {"type": "MESSAGE_UNSENT", **base, "unsentAt": at}
    if event.kind is ChangeKind.REACT:
        return {"type": "REACTION", **base, "emoji": data["emoji"], "op": data["op"]}
    raise ValueError(f"no wire form for a {event.kind} event")


def event_json(event: Event, zone: ZoneInfo) -> bytes:
    return dumps(event_dict(event, zone))


def hide_dict(hide: Hide, zone: ZoneInfo, *, seq: int | None = None) -> dict[str, Any]:
    """MESSAGE_DELETED: ``hide.user_id`` hid the message for themselves (their devices only).
    ``seq`` only when it stands in a replay where the message itself would have been."""
    payload: dict[str, Any] = {
        "type": "MESSAGE_DELETED",
        "coupleId": hide.couple_id,
        "messageId": hide.message_id,
        "userId": hide.user_id,
        "deletedAt": format_timestamp(hide.created_at, zone),
    }
    if seq is not None:
        payload["seq"] = seq
    return payload


def system_json(
    event: str,
    user_id: uuid.UUID | None,
    at: datetime,
    zone: ZoneInfo,
    *,
    typing: bool | None = None,
    couple_id: uuid.UUID | None = None,
) -> bytes:
    """A SYSTEM event: about a user (presence, typing) or about the couple (``user_id``
    None; ``couple_id`` names it)."""
    payload: dict[str, Any] = {"type": "SYSTEM", "event": event}
    if user_id is not None:
        payload["userId"] = user_id
    payload["timestamp"] = format_timestamp(at, zone)
    if couple_id is not None:
        payload["coupleId"] = couple_id
    if typing is not None:
        payload["typing"] = typing
    return dumps(payload)
