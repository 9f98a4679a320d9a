"""What a push and a webhook say, from committed rows: no I/O.

A push tells one device of one message: the contract's payload (``type, coupleId, seq,
messageId, senderName, preview, unreadCount``) and the visible text in the device's language
(Korean unless its locale says English), without the sender and the text when the user
turned previews off. A webhook event is ``{"id","type","createdAt","data"}`` with an ``id``
derived from what it tells of, so a retry (or another node) sends the same id.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ieum_chat.chat import codec
from ieum_chat.push.providers.base import Notification
from ieum_chat.store.records import NOTICE, SYSTEM_USER_NAME, ChangeKind, Event, Message, User

__all__ = [
    "APP_NAME",
    "PREVIEW_LENGTH",
    "couple_dissolved",
    "language",
    "notification",
    "stream_event",
    "user_erased",
    "webhook_event",
]

APP_NAME = SYSTEM_USER_NAME  # 이음
PREVIEW_LENGTH = 100  # characters of a text shown in a notification

# (Korean, English) for what has no text of its own, and the hidden preview
_TYPE_TEXT = {
    "IMAGE": ("사진", "Photo"),
    "STICKER": ("이모티콘", "Sticker"),
    "AUDIO": ("음성 메시지", "Voice message"),
    "VIDEO": ("동영상", "Video"),
    "FILE": ("파일", "File"),
}
_HIDDEN = ("새 메시지", "New message")
_WEBHOOK_NAMESPACE = uuid.UUID("5c3f0e52-2f43-4c55-9d0b-6e9b8f1a7d21")


def language(locale: str | None) -> int:
    """0: Korean (the app's language, and the default), 1: English."""
    return 1 if locale and locale.lower().startswith("en") else 0


def preview_text(message: Message, lang: int) -> str:
    if message.type in ("TEXT", NOTICE) or message.type not in _TYPE_TEXT:
        text = message.content or ""
        return text if len(text) <= PREVIEW_LENGTH else text[: PREVIEW_LENGTH - 1] + "…"
    return _TYPE_TEXT[message.type][lang]


def notification(
    message: Message,
    sender_name: str,
    *,
    locale: str | None,
    show_preview: bool,
    unread: int,
) -> Notification:
    """The push for ``message`` to one device of a recipient."""
    lang = language(locale)
    preview = preview_text(message, lang) if show_preview else _HIDDEN[lang]
    data: dict[str, str | int] = {
        "type": message.type,
        "coupleId": str(message.couple_id),
        "seq": message.seq,
        "messageId": str(message.id),
        "senderName": sender_name if show_preview else APP_NAME,
        "preview": preview,
        "unreadCount": unread,
    }
    return Notification(
        title=sender_name if show_preview else APP_NAME,
        body=preview,
        data=data,
        collapse_key=str(message.couple_id),
        badge=unread,
    )


def notification_to_json(note: Notification) -> dict[str, Any]:
    return {
        "title": note.title,
        "body": note.body,
        "data": note.data,
        "collapseKey": note.collapse_key,
        "badge": note.badge,
        "ttl": note.ttl,
    }


def notification_from_json(value: dict[str, Any]) -> Notification:
    return Notification(
        title=value["title"],
        body=value["body"],
        data=value["data"],
        collapse_key=value["collapseKey"],
        badge=value["badge"],
        ttl=value["ttl"],
    )


def webhook_event(key: str, kind: str, at: datetime, data: dict[str, Any], zone: ZoneInfo) -> bytes:
    """One webhook body; ``key`` names what it tells of (its id is derived from it)."""
    return codec.dumps(
        {
            "id": str(uuid.uuid5(_WEBHOOK_NAMESPACE, key)),
            "type": kind,
            "createdAt": codec.format_timestamp(at, zone),
            "data": data,
        }
    )


_EVENT_TYPES = {
    ChangeKind.EDIT: "message.edited",
    ChangeKind.UNSEND: "message.unsent",
    ChangeKind.READ: "message.read",
}


def stream_event(
    item: Message | Event,
    zone: ZoneInfo,
    senders: dict[uuid.UUID, User],
    quoted: dict[uuid.UUID, Message],
    *,
    as_of: int,
) -> bytes | None:
    """The webhook of one entry of a couple's stream; None for what webhooks do not tell
    (reactions). A message is as it was read, ``as_of`` the stream's position then: its
    ``asOfSeq`` says which later changes it already shows (an edit or unsend at or below
    it), as on the socket."""
    key = f"{item.couple_id}:{item.seq}"
    if isinstance(item, Message):
        sender = senders.get(item.sender_id)
        answered = quoted.get(item.reply_to_id) if item.reply_to_id else None
        data = codec.message_dict(item, sender, zone, answered, as_of=as_of)
        return webhook_event(key, "message.created", item.created_at, data, zone)
    kind = _EVENT_TYPES.get(item.kind)
    if kind is None:
        return None
    return webhook_event(key, kind, item.created_at, codec.event_dict(item, zone), zone)


def couple_dissolved(
    couple_id: uuid.UUID, user_ids: tuple[uuid.UUID, uuid.UUID], at: datetime, zone: ZoneInfo
) -> bytes:
    data = {
        "coupleId": str(couple_id),
        "userIds": [str(u) for u in user_ids],
        "dissolvedAt": codec.format_timestamp(at, zone),
    }
    return webhook_event(f"{couple_id}:dissolved", "couple.dissolved", at, data, zone)


def user_erased(user_id: uuid.UUID, at: datetime, zone: ZoneInfo) -> bytes:
    data = {"userId": str(user_id), "deletedAt": codec.format_timestamp(at, zone)}
    return webhook_event(f"{user_id}:erased", "user.erased", at, data, zone)
