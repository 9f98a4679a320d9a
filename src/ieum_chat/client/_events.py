"""What the application receives: frozen event classes, and the parser of the server's JSON.

The server renders timestamps as local date-times without an offset (in its IEUM_TIMEZONE,
README "Payloads"); they are parsed as naive datetimes, or given `tz` when the caller knows
the server's zone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

import orjson

__all__ = [
    "ChatMessage",
    "Connected",
    "Disconnected",
    "ErrorEvent",
    "Event",
    "MalformedEvent",
    "ReadReceipt",
    "SendReceipt",
    "SystemEvent",
    "error_event",
    "parse_event",
    "parse_timestamp",
]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A stored chat message of the couple, delivered in `seq` order exactly once."""

    id: uuid.UUID
    couple_id: uuid.UUID
    seq: int
    sender_id: uuid.UUID
    sender_name: str | None
    sender_profile_image: str | None
    content: str | None
    type: str
    """TEXT, IMAGE or STICKER."""
    image_url: str | None
    is_read: bool
    read_at: datetime | None
    created_at: datetime
    temp_id: str | None


@dataclass(frozen=True, slots=True)
class ReadReceipt:
    """The partner (`reader_id`) read these messages (only the ones that changed)."""

    reader_id: uuid.UUID
    message_ids: tuple[uuid.UUID, ...]
    seqs: tuple[int, ...]
    read_at: datetime


@dataclass(frozen=True, slots=True)
class SystemEvent:
    """USER_CONNECTED (a user's first session), USER_DISCONNECTED (their last), TYPING."""

    event: str
    user_id: uuid.UUID
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
    """A connection is up and subscribed; chat resumes after `resumed_after_seq`."""

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
    """The server's RECEIPT for a send: the message is committed (durable) and, as the server
    de-duplicates by tempId, stored exactly once however many times it was sent."""

    temp_id: str
    attempts: int
    """How many times the SEND was written (more than 1 after reconnects or retries)."""


Event = ChatMessage | ReadReceipt | SystemEvent | ErrorEvent | Connected | Disconnected


class MalformedEvent(ValueError):
    """A payload the SDK cannot read; `seq` is its chat seq when it had a readable one."""

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


def _uuid(data: dict[str, Any], key: str) -> uuid.UUID:
    try:
        return uuid.UUID(_str(data, key))
    except ValueError:
        raise MalformedEvent(f"{key!r} is not a UUID") from None


def _int(value: object, key: str) -> int:
    # bool is an int subclass; a `true` seq is a bug on the other side.
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedEvent(f"{key!r} must be an integer")
    return value


def _time(data: dict[str, Any], key: str, tz: tzinfo | None) -> datetime:
    try:
        return parse_timestamp(_str(data, key), tz)
    except ValueError:
        raise MalformedEvent(f"{key!r} is not an ISO-8601 date-time") from None


def _chat_message(data: dict[str, Any], tz: tzinfo | None) -> ChatMessage:
    seq = _int(data.get("seq"), "seq")
    try:
        read_at = data.get("readAt")
        is_read = data.get("isRead", False)
        if not isinstance(is_read, bool):
            raise MalformedEvent("'isRead' must be a boolean")
        return ChatMessage(
            id=_uuid(data, "id"),
            couple_id=_uuid(data, "coupleId"),
            seq=seq,
            sender_id=_uuid(data, "senderId"),
            sender_name=_opt_str(data, "senderName"),
            sender_profile_image=_opt_str(data, "senderProfileImage"),
            content=_opt_str(data, "content"),
            type=_str(data, "type"),
            image_url=_opt_str(data, "imageUrl"),
            is_read=is_read,
            read_at=None if read_at is None else _time(data, "readAt", tz),
            created_at=_time(data, "createdAt", tz),
            temp_id=_opt_str(data, "tempId"),
        )
    except MalformedEvent as exc:
        raise MalformedEvent(f"chat message seq {seq}: {exc}", seq) from None


def _read_receipt(data: dict[str, Any], tz: tzinfo | None) -> ReadReceipt:
    ids = data.get("messageIds", [])
    seqs = data.get("seqs", [])
    if not isinstance(ids, list) or not isinstance(seqs, list):
        raise MalformedEvent("'messageIds' and 'seqs' must be lists")
    try:
        message_ids = tuple(uuid.UUID(item) for item in ids)
    except (TypeError, ValueError, AttributeError):
        raise MalformedEvent("'messageIds' must hold UUIDs") from None
    return ReadReceipt(
        reader_id=_uuid(data, "readerId"),
        message_ids=message_ids,
        seqs=tuple(_int(item, "seqs") for item in seqs),
        read_at=_time(data, "readAt", tz),
    )


def _system_event(data: dict[str, Any], tz: tzinfo | None) -> SystemEvent:
    typing = data.get("typing")
    if typing is not None and not isinstance(typing, bool):
        raise MalformedEvent("'typing' must be a boolean")
    return SystemEvent(
        event=_str(data, "event"),
        user_id=_uuid(data, "userId"),
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


def parse_event(
    body: bytes | str, tz: tzinfo | None = None
) -> ChatMessage | ReadReceipt | SystemEvent | ErrorEvent | None:
    """One MESSAGE body of the couple topic or the error queue; None for a payload type this
    SDK does not know (a newer server), raises MalformedEvent for a broken known one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedEvent("body is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedEvent("body is not a JSON object")
    kind = data.get("type")
    if kind == "READ_RECEIPT":
        return _read_receipt(data, tz)
    if kind == "SYSTEM":
        return _system_event(data, tz)
    if kind == "ERROR":
        return error_event(data)
    if "seq" in data and "senderId" in data:
        return _chat_message(data, tz)
    return None
