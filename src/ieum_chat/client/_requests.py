"""The SEND bodies of a message and of the changes to a sent message (README "Destinations").

Each request is a destination under ``/app/chat/{coupleId}`` and a JSON body carrying a
tempId: the client keeps it in the outbox by that tempId and writes it again after a
reconnect, and the server applies a repeated tempId once (a delete for me, which the server
does not number, is idempotent by itself; its tempId only matches an error to it).
Content is left to the server to judge, which answers with the reason.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

import orjson

__all__ = [
    "MAX_TEMP_ID_LENGTH",
    "AppRequest",
    "check_temp_id",
    "delete_request",
    "edit_request",
    "react_request",
    "send_request",
    "unsend_request",
]

MAX_TEMP_ID_LENGTH: Final = 64


@dataclass(frozen=True, slots=True)
class AppRequest:
    suffix: str
    """After ``/app/chat/{coupleId}``: "" for a message, "/edit", "/unsend", ..."""
    body: bytes


def check_temp_id(temp_id: str | None) -> str:
    """The caller's tempId, or a fresh one (uuid4)."""
    temp_id = str(uuid.uuid4()) if temp_id is None else temp_id
    if not 1 <= len(temp_id) <= MAX_TEMP_ID_LENGTH:
        raise ValueError(f"temp_id must be 1 to {MAX_TEMP_ID_LENGTH} characters")
    return temp_id


def _message_id(value: uuid.UUID | str) -> str:
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(value))


def send_request(
    type: str,
    content: str | None,
    image_url: str | None,
    temp_id: str,
    reply_to: uuid.UUID | str | None = None,
) -> AppRequest:
    payload: dict[str, object] = {
        "type": type,
        "content": content,
        "imageUrl": image_url,
        "tempId": temp_id,
    }
    if reply_to is not None:  # absent rather than null: a server before replies is not asked
        payload["replyTo"] = _message_id(reply_to)
    return AppRequest("", orjson.dumps(payload))


def edit_request(message_id: uuid.UUID | str, content: str, temp_id: str) -> AppRequest:
    body = {"messageId": _message_id(message_id), "content": content, "tempId": temp_id}
    return AppRequest("/edit", orjson.dumps(body))


def unsend_request(message_id: uuid.UUID | str, temp_id: str) -> AppRequest:
    body = {"messageId": _message_id(message_id), "tempId": temp_id}
    return AppRequest("/unsend", orjson.dumps(body))


def delete_request(message_id: uuid.UUID | str, temp_id: str) -> AppRequest:
    body = {"messageId": _message_id(message_id), "tempId": temp_id}
    return AppRequest("/delete", orjson.dumps(body))


def react_request(
    message_id: uuid.UUID | str, emoji: str, temp_id: str, *, add: bool
) -> AppRequest:
    if not emoji:
        raise ValueError("emoji must be one emoji")
    body = {
        "messageId": _message_id(message_id),
        "emoji": emoji,
        "op": "add" if add else "remove",
        "tempId": temp_id,
    }
    return AppRequest("/react", orjson.dumps(body))
