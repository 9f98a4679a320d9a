"""Changes of sent messages over REST: edit, unsend, delete for me, reactions.

Each route goes through :meth:`ChatService.change`, as the STOMP destinations
``/app/chat/{roomId}/edit|unsend|delete|react`` do: the same validation, tempId idempotency,
ordering in the couple's stream and broadcast; the answer comes after the commit and is the
message as the caller now sees it (204 for delete-for-me, after which the caller no longer
sees it).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from ieum_chat.api.deps import Room, RoomAccess, json_body, json_response, read_object
from ieum_chat.api.errors import responses
from ieum_chat.api.models import MessageOut, edit_body_schema, unsend_body_schema
from ieum_chat.chat.requests import validate_change
from ieum_chat.config import Settings
from ieum_chat.errors import ChangeFailed, NotFound

__all__ = ["build_changes_router"]

MessageId = Annotated[
    str,
    Path(
        alias="messageId",
        description="the message's id (not one of this room's, or not a UUID: 404)",
        json_schema_extra={"format": "uuid"},
    ),
]
Emoji = Annotated[
    str,
    Path(
        description="one emoji, percent-encoded in the URL (%E2%9D%A4%EF%B8%8F for ❤️); "
        "a ZWJ sequence, flag or skin tone counts as one"
    ),
]

_ERRORS = (400, 401, 403, 404, 413, 429, 503)
_WHEN = {
    "s403": "another couple's room (UNAUTHORIZED), not the sender's message (FORBIDDEN), "
    "or too late to unsend it (WINDOW_EXPIRED)",
    "s404": "no such room, or no such message in it (NOT_FOUND)",
}


async def _apply(
    access: RoomAccess,
    action: str,
    message_id: str,
    fields: dict[str, Any],
    max_text_length: int,
) -> Response:
    try:
        uuid.UUID(message_id)
    except ValueError:
        raise NotFound("no such message in this room") from None
    request = validate_change(
        action, {**fields, "messageId": message_id}, max_text_length=max_text_length
    )
    chat = access.chat
    applied = await (await chat.change(access.user, access.couple.id, request))
    (message,) = applied.messages[:1] or (None,)
    if message is None:  # the message is gone (erased) since: nothing to show
        return Response(status_code=204)
    as_of = applied.event.seq if applied.event is not None else None
    return json_response((await chat.history.render_messages([message], as_of=as_of))[0])


def build_changes_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/chat/rooms/{roomId}/messages/{messageId}", tags=["chat"])
    body_limit = settings.max_frame_size
    text_limit = settings.max_text_length

    @router.patch(
        "",
        response_model=MessageOut,
        summary="Edit a message",
        description="The sender's own TEXT message, not unsent: its new content, `editedAt` "
        "set, and a MESSAGE_EDITED event (with its seq) broadcast to the couple. The same as "
        "STOMP SEND `/app/chat/{roomId}/edit`; a repeated tempId is applied once.",
        openapi_extra=json_body(edit_body_schema(text_limit)),
        responses=responses(*_ERRORS, **_WHEN),
    )
    async def edit_message(access: Room, message_id: MessageId, request: Request) -> Response:
        fields = await read_object(request, body_limit, error=ChangeFailed)
        return await _apply(access, "edit", message_id, fields, text_limit)

    @router.post(
        "/unsend",
        response_model=MessageOut,
        summary="Unsend a message for everyone",
        description="The sender's own message, within IEUM_UNSEND_WINDOW seconds of sending: "
        "it becomes a tombstone (`unsent`, no content, image or reactions) and a "
        "MESSAGE_UNSENT event is broadcast. Unsending it again changes nothing. The same as "
        "STOMP SEND `/app/chat/{roomId}/unsend`.",
        openapi_extra=json_body(unsend_body_schema(), required=False),
        responses=responses(*_ERRORS, **_WHEN),
    )
    async def unsend_message(access: Room, message_id: MessageId, request: Request) -> Response:
        fields = await read_object(request, body_limit, error=ChangeFailed)
        return await _apply(access, "unsend", message_id, fields, text_limit)

    @router.delete(
        "",
        status_code=204,
        summary="Delete a message for me",
        description="Hidden from the caller's history and devices only (a MESSAGE_DELETED on "
        "their own sessions' `/user/queue/events`); the partner still sees it. The same as "
        "STOMP SEND `/app/chat/{roomId}/delete`.",
        responses=responses(401, 403, 404, 429, 503, **_WHEN),
    )
    async def delete_message(access: Room, message_id: MessageId) -> Response:
        await _apply(access, "delete", message_id, {}, text_limit)
        return Response(status_code=204)

    @router.post(
        "/reactions/{emoji}",
        response_model=MessageOut,
        summary="React to a message",
        description="One reaction per emoji per user (adding it again changes nothing), at "
        "most 20 different emojis on a message; a REACTION event is broadcast. The same as "
        'STOMP SEND `/app/chat/{roomId}/react` with `"op": "add"`.',
        responses=responses(*_ERRORS, **_WHEN),
    )
    async def add_reaction(access: Room, message_id: MessageId, emoji: Emoji) -> Response:
        fields = {"emoji": emoji, "op": "add"}
        return await _apply(access, "react", message_id, fields, text_limit)

    @router.delete(
        "/reactions/{emoji}",
        response_model=MessageOut,
        summary="Take a reaction back",
        description='The same as STOMP SEND `/app/chat/{roomId}/react` with `"op": "remove"`; '
        "removing one that is not there changes nothing.",
        responses=responses(*_ERRORS, **_WHEN),
    )
    async def remove_reaction(access: Room, message_id: MessageId, emoji: Emoji) -> Response:
        fields = {"emoji": emoji, "op": "remove"}
        return await _apply(access, "react", message_id, fields, text_limit)

    return router
