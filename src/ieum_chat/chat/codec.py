"""The JSON the server puts on the wire, serialised once per event with orjson.

Timestamps are ISO-8601 local date-times without an offset, rendered in ``IEUM_TIMEZONE``,
so that Kotlin's ``LocalDateTime.parse`` accepts them (the plan's format).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from ieum_chat.store.records import Message, User

__all__ = [
    "dumps",
    "format_timestamp",
    "message_dict",
    "message_json",
    "read_receipt_json",
    "system_json",
]


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def format_timestamp(value: datetime, zone: ZoneInfo) -> str:
    """Naive UTC (as stored) -> local date-time in ``zone``, millisecond precision."""
    local = value.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
    return local.isoformat(timespec="milliseconds")


def message_dict(message: Message, sender: User | None, zone: ZoneInfo) -> dict[str, Any]:
    """Every field of the plan's server message, plus ``seq``."""
    return {
        "id": str(message.id),
        "coupleId": str(message.couple_id),
        "seq": message.seq,
        "senderId": str(message.sender_id),
        "senderName": sender.name if sender else None,
        "senderProfileImage": sender.profile_image if sender else None,
        "content": message.content,
        "type": message.type,
        "imageUrl": message.image_url,
        "isRead": message.is_read,
        "readAt": format_timestamp(message.read_at, zone) if message.read_at else None,
        "createdAt": format_timestamp(message.created_at, zone),
        "tempId": message.temp_id,
    }


def message_json(message: Message, sender: User | None, zone: ZoneInfo) -> bytes:
    return orjson.dumps(message_dict(message, sender, zone))


def read_receipt_json(
    reader_id: uuid.UUID,
    messages: Sequence[Message],
    read_at: datetime,
    zone: ZoneInfo,
) -> bytes:
    return orjson.dumps(
        {
            "type": "READ_RECEIPT",
            "readerId": str(reader_id),
            "messageIds": [str(m.id) for m in messages],
            "seqs": [m.seq for m in messages],
            "readAt": format_timestamp(read_at, zone),
        }
    )


def system_json(
    event: str,
    user_id: uuid.UUID,
    at: datetime,
    zone: ZoneInfo,
    *,
    typing: bool | None = None,
) -> bytes:
    payload: dict[str, Any] = {
        "type": "SYSTEM",
        "event": event,
        "userId": str(user_id),
        "timestamp": format_timestamp(at, zone),
    }
    if typing is not None:
        payload["typing"] = typing
    return orjson.dumps(payload)
