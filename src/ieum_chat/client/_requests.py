"""The SEND bodies of a message and of the changes to a sent message (README "Destinations").

Each request is a destination under ``/app/chat/{coupleId}`` and a JSON body carrying a
tempId: the client keeps it in the outbox by that tempId and writes it again after a
reconnect, and the server applies a repeated tempId once (a delete for me, which the server
does not number, is idempotent by itself; its tempId only matches an error to it).
Content is left to the server to judge, which answers with the reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import orjson

from ieum_chat.ids import new_ordered_id

__all__ = [
    "MAX_TEMP_ID_LENGTH",
    "AppRequest",
    "check_temp_id",
    "delete_request",
    "edit_request",
    "media_fields",
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
    """The caller's tempId, or a fresh one: a time-ordered UUID, so that the server's index of
    a sender's tempIds grows at its end (see ``ieum_chat.ids``)."""
    temp_id = str(new_ordered_id()) if temp_id is None else temp_id
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
    *,
    media: Mapping[str, object] | None = None,
) -> AppRequest:
    """``media``: the wire keys of an AUDIO, VIDEO or FILE message (:func:`media_fields`),
    which take the place of ``imageUrl``."""
    payload: dict[str, object] = {"type": type, "content": content}
    if media is None:
        payload["imageUrl"] = image_url
    else:
        payload.update(media)
    payload["tempId"] = temp_id
    if reply_to is not None:  # absent rather than null: a server before replies is not asked
        payload["replyTo"] = _message_id(reply_to)
    return AppRequest("", orjson.dumps(payload))


def media_fields(
    media_url: str,
    *,
    duration_ms: int | None = None,
    thumbnail_url: str | None = None,
    file_name: str | None = None,
    size: int | None = None,
) -> dict[str, object]:
    """``mediaUrl`` and the details given. A detail left out is absent, not null: the server
    fills it in from the upload, and refuses a send whose detail disagrees with it."""
    if not media_url:
        raise ValueError("media_url must be the mediaUrl of an upload")
    fields: dict[str, object] = {"mediaUrl": media_url}
    for key, value in (("durationMs", duration_ms), ("size", size)):
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{key} must be a non-negative integer")
        fields[key] = value
    if thumbnail_url is not None:
        fields["thumbnailUrl"] = thumbnail_url
    if file_name is not None:
        if not file_name:
            raise ValueError("file_name must not be empty")
        fields["fileName"] = file_name
    return fields


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
