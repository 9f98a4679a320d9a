"""The REST payloads, as OpenAPI documents them.

Responses are serialised by :mod:`ieum_chat.chat.codec` (the same JSON as on the socket), not
by these models: they describe that JSON, and the schemathesis test checks that they do.
The message and read-mark request bodies are parsed by :mod:`ieum_chat.chat.requests` (the
STOMP path's validation); their schemas below are for the documentation only.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ieum_chat.chat.requests import (
    MAX_DURATION_MS,
    MAX_READ_IDS,
    MAX_SEQ,
    MAX_SIZE,
    MAX_TEMP_ID_LENGTH,
)
from ieum_chat.uploads import CONTENT_TYPES

__all__ = [
    "HistoryPage",
    "MessageOut",
    "PartnerOut",
    "ReadResult",
    "RoomOut",
    "UploadOut",
    "UploadRequest",
    "UploadTicketOut",
    "edit_body_schema",
    "read_body_schema",
    "send_body_schema",
    "unsend_body_schema",
]

_TIMESTAMP = "local date-time in IEUM_TIMEZONE, no offset (2024-01-11T10:10:00.000)"


class ReplyOut(BaseModel):
    """The message a reply answers, as it is now."""

    messageId: uuid.UUID
    senderId: uuid.UUID | None
    type: str | None
    preview: str | None = Field(
        description="TEXT: its first 100 characters (after edits); 사진 / 이모티콘 for an image "
        "(or its caption) / a sticker; null once it is unsent"
    )
    unsent: bool


class ReactionOut(BaseModel):
    emoji: str
    userIds: list[uuid.UUID] = Field(description="who put it there, in the order they did")


class MessageOut(BaseModel):
    """A stored chat message as it is now: every field of the plan's server message, plus
    ``seq`` and what became of it (edited, unsent, reactions) and the message it answers."""

    id: uuid.UUID
    coupleId: uuid.UUID
    seq: int = Field(
        ge=1, description="its place in the couple's stream (messages and changes share it)"
    )
    senderId: uuid.UUID
    senderName: str | None
    senderProfileImage: str | None
    content: str | None
    type: str = Field(description="TEXT, IMAGE, AUDIO, VIDEO, FILE, STICKER or NOTICE")
    imageUrl: str | None
    isRead: bool
    readAt: str | None = Field(description=_TIMESTAMP)
    createdAt: str = Field(description=_TIMESTAMP)
    tempId: str | None
    replyTo: ReplyOut | None
    editedAt: str | None = Field(description=f"when its content was last edited: {_TIMESTAMP}")
    unsent: bool = Field(description="unsent by its sender: a tombstone, no content or image")
    reactions: list[ReactionOut]
    asOfSeq: int = Field(
        description="the couple stream's position this state reflects: a change event with "
        "a seq at or below it is already in it (skip it when applying the stream)"
    )
    # Media messages (IMAGE, AUDIO, VIDEO, FILE) only; other types do not have these keys.
    mediaUrl: str | None = Field(default=None, description="media messages: the file")
    thumbnailUrl: str | None = Field(
        default=None, description="IMAGE, VIDEO: a WebP of at most 320 px on its long side"
    )
    durationMs: int | None = Field(default=None, description="AUDIO, VIDEO")
    fileName: str | None = Field(default=None, description="FILE: the name it was shared with")
    size: int | None = Field(default=None, description="media messages: bytes of the file")
    width: int | None = Field(default=None, description="IMAGE, VIDEO: as displayed")
    height: int | None = Field(default=None, description="IMAGE, VIDEO: as displayed")


class PartnerOut(BaseModel):
    id: uuid.UUID
    name: str
    profileImage: str | None
    online: bool = Field(description="has at least one open socket (on any node)")


class RoomOut(BaseModel):
    """The caller's couple room; ``id`` is the coupleId (STOMP ``/topic/couple/{id}``)."""

    id: uuid.UUID
    partner: PartnerOut
    unreadCount: int = Field(
        ge=0,
        description="the partner's messages the caller has not read (unsent ones and those "
        "the caller deleted for themselves not counted)",
    )
    lastMessage: MessageOut | None


class HistoryPage(BaseModel):
    messages: list[MessageOut] = Field(description="in the requested order (newest first)")
    hasMore: bool = Field(description="more messages exist past the last one of this page")
    nextCursor: int | None = Field(
        description="seq of the page's last message when hasMore: pass it as `before` "
        "(order=desc) or `after` (order=asc) for the next page"
    )


class ReadResult(BaseModel):
    """The READ_RECEIPT broadcast to the couple (the messages that changed)."""

    type: Literal["READ_RECEIPT"]
    coupleId: uuid.UUID
    seq: int | None = Field(description="its place in the couple's stream; null: no change")
    readerId: uuid.UUID
    messageIds: list[uuid.UUID]
    seqs: list[int]
    readAt: str | None = Field(description=f"{_TIMESTAMP}; null when nothing changed")


def _integral(value: object) -> object:
    """17.0 is the integer 17 in JSON Schema (and what clients with only doubles send)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class UploadRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    contentType: str = Field(
        json_schema_extra={"enum": list(CONTENT_TYPES)},
        description="other types: 415 UNSUPPORTED_MEDIA_TYPE",
    )
    size: Annotated[int, BeforeValidator(_integral)] = Field(
        ge=1, description="bytes; over the kind's limit: 413 PAYLOAD_TOO_LARGE"
    )
    fileName: str | None = Field(
        default=None,
        max_length=255,
        description="FILE: the name it is shared with (its downloads are named so); no '/', "
        "'\\' or control characters",
    )


class UploadTicketOut(BaseModel):
    """Upload the file as told, POST ``completeUrl`` (the local backend's PUT did that
    already), then send a message of its ``kind`` with ``mediaUrl``."""

    uploadId: str
    kind: Literal["IMAGE", "AUDIO", "VIDEO", "FILE"] = Field(
        description="the message type that carries it"
    )
    method: Literal["PUT", "POST"] = Field(
        description="PUT: the bytes as the body, with `headers`. POST: a multipart form with "
        "every entry of `fields`, then the file as the field `file` (S3)"
    )
    uploadUrl: str
    headers: dict[str, str]
    fields: dict[str, str]
    expiresAt: str = Field(description=f"when uploadUrl stops working: {_TIMESTAMP}")
    expiresIn: int = Field(description="seconds from now until expiresAt")
    mediaUrl: str = Field(description="where the file is served once checked")
    imageUrl: str | None = Field(description="images: mediaUrl (the plan's name)")
    completeUrl: str = Field(description="POST it once uploaded: the server checks the file")


class UploadOut(BaseModel):
    """A checked, published upload: what a message naming it will carry."""

    uploadId: str
    kind: Literal["IMAGE", "AUDIO", "VIDEO", "FILE"]
    contentType: str
    size: int = Field(description="bytes as stored (a photo without its EXIF is smaller)")
    mediaUrl: str
    imageUrl: str | None = Field(description="images: mediaUrl")
    thumbnailUrl: str | None = Field(
        description="IMAGE, VIDEO: WebP, at most 320 px on its long side; null when it could "
        "not be made in time"
    )
    durationMs: int | None = Field(description="AUDIO, VIDEO")
    width: int | None
    height: int | None
    fileName: str | None


def send_body_schema(max_text_length: int) -> dict[str, Any]:
    """The send request. The per-type rules (TEXT needs non-blank content, IMAGE an uploaded
    imageUrl, AUDIO, VIDEO and FILE an uploaded mediaUrl, STICKER a sticker id of at most 200
    characters) are enforced by the server and answered with 400 SEND_FAILED; they are
    described, not encoded, here."""
    nullable_string: dict[str, Any] = {"type": ["string", "null"]}
    return {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {
                "type": "string",
                "enum": ["TEXT", "IMAGE", "AUDIO", "VIDEO", "FILE", "STICKER"],
            },
            "content": {
                **nullable_string,
                "maxLength": max_text_length,
                "description": "TEXT: the text (non-blank); IMAGE, AUDIO, VIDEO, FILE: an "
                "optional caption; STICKER: the sticker id (at most 200 characters)",
            },
            "imageUrl": {
                **nullable_string,
                "description": "IMAGE: the mediaUrl of an upload (POST "
                "/chat/rooms/{roomId}/uploads; other hosts only where the operator allows them)",
            },
            "mediaUrl": {
                **nullable_string,
                "description": "AUDIO, VIDEO, FILE (and IMAGE, for imageUrl): the mediaUrl of "
                "a completed upload of this room, of the message's kind",
            },
            "durationMs": {
                "type": ["integer", "null"],
                "minimum": 0,
                "maximum": MAX_DURATION_MS,
                "description": "AUDIO, VIDEO: optional; must agree with the file's (within "
                "1 s or 10 %), which the message carries",
            },
            "thumbnailUrl": {
                **nullable_string,
                "description": "IMAGE, VIDEO: optional; must be the upload's thumbnailUrl",
            },
            "fileName": {
                **nullable_string,
                "maxLength": 255,
                "description": "FILE: optional; must be the name the file was uploaded with "
                "(no '/', '\\\\' or control characters, on any type)",
            },
            "size": {
                "type": ["integer", "null"],
                "minimum": 0,
                "maximum": MAX_SIZE,
                "description": "FILE: optional; must be the upload's size",
            },
            "tempId": _TEMP_ID,
            "replyTo": {
                "type": ["string", "null"],
                "format": "uuid",
                "description": "the id of the message this one answers (of this couple; "
                "another's: 404 NOT_FOUND)",
            },
        },
        "example": {"type": "TEXT", "content": "안녕하세요!", "tempId": "client-temp-id-12345"},
    }


_TEMP_ID: dict[str, Any] = {
    "type": ["string", "null"],
    "minLength": 1,
    "maxLength": MAX_TEMP_ID_LENGTH,
    "description": "the client's retry key: a repeat is stored once and answered as the first",
}


def edit_body_schema(max_text_length: int) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["content"],
        "properties": {
            "content": {
                "type": "string",
                "minLength": 1,
                "maxLength": max_text_length,
                "description": "the new text (non-blank); TEXT messages only",
            },
            "tempId": _TEMP_ID,
        },
        "example": {"content": "고쳐 쓴 메시지", "tempId": "edit-1"},
    }


def unsend_body_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"tempId": _TEMP_ID},
        "example": {"tempId": "unsend-1"},
    }


def read_body_schema() -> dict[str, Any]:
    """Exactly one of ``messageIds`` and ``upToSeq``."""
    return {
        "type": "object",
        "properties": {
            "messageIds": {
                "type": ["array", "null"],
                "maxItems": MAX_READ_IDS,
                "items": {"type": "string", "format": "uuid"},
            },
            "upToSeq": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_SEQ},
        },
        "oneOf": [
            {"required": ["messageIds"], "properties": {"messageIds": {"type": "array"}}},
            {"required": ["upToSeq"], "properties": {"upToSeq": {"type": "integer"}}},
        ],
        "example": {"upToSeq": 17},
    }
