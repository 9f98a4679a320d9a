"""The couple's room over REST: room info, history, sending and read marks.

Sending and read marks go through the same :class:`ChatService` calls as STOMP SEND (the same
validation, tempId idempotency, ordering and broadcast): a message sent here reaches every
socket subscribed to ``/topic/couple/{roomId}``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ieum_chat.api.deps import Caller, Chat, Room, json_response, read_body
from ieum_chat.api.errors import responses
from ieum_chat.api.models import (
    HistoryPage,
    MessageOut,
    ReadResult,
    RoomOut,
    read_body_schema,
    send_body_schema,
)
from ieum_chat.chat import codec
from ieum_chat.chat.requests import MAX_SEQ, parse_read_request, parse_send_request
from ieum_chat.chat.service import ChatService
from ieum_chat.config import Settings
from ieum_chat.errors import NotFound
from ieum_chat.observability import metrics
from ieum_chat.store.records import User

__all__ = ["MAX_PAGE", "build_rooms_router"]

MAX_PAGE = 100

_ROOM_ERRORS = (401, 403, 404)


def _json_body(schema: dict[str, object]) -> dict[str, object]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def build_rooms_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/chat", tags=["chat"])
    body_limit = settings.max_frame_size  # a REST body may be as large as a STOMP frame

    @router.get(
        "/room",
        response_model=RoomOut,
        summary="The caller's couple room",
        responses=responses(401, 404, 503, s404="the caller is not in a couple (NOT_FOUND)"),
    )
    async def get_room(chat: Chat, user: Caller) -> Response:
        couple = await chat.couple_of(user.id)
        if couple is None:
            raise NotFound("you are not in a couple")
        partner_id = couple.partner_of(user.id)
        partner = await chat.user(partner_id)
        if partner is None:  # a couple row outliving its user; the schema's FKs forbid it
            raise NotFound("the partner of this couple does not exist")
        unread = await chat.db.unread_count(couple.id, user.id)
        last = await chat.db.last_message(couple.id)
        senders = {user.id: user, partner.id: partner}
        return json_response(
            {
                "id": str(couple.id),
                "partner": {
                    "id": str(partner.id),
                    "name": partner.name,
                    "profileImage": partner.profile_image,
                    "online": await chat.presence.online(partner.id),
                },
                "unreadCount": unread,
                "lastMessage": (
                    codec.message_dict(last, senders.get(last.sender_id), chat.zone)
                    if last is not None
                    else None
                ),
            }
        )

    @router.get(
        "/rooms/{roomId}/messages",
        response_model=HistoryPage,
        summary="History, by seq cursor",
        description="Newest first by default. `before`/`after` bound the seq range (exclusive); "
        "follow `nextCursor` for the next page. Pages come from the (couple_id, seq) index: "
        "any depth costs the same.",
        responses=responses(400, *_ROOM_ERRORS, 503),
    )
    async def get_messages(
        *,
        chat: Chat,
        room: Room,
        before: Annotated[
            int | None, Query(ge=1, le=MAX_SEQ, description="only messages with seq < before")
        ] = None,
        after: Annotated[
            int | None, Query(ge=0, le=MAX_SEQ, description="only messages with seq > after")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size")] = 50,
        order: Annotated[
            Literal["desc", "asc"], Query(description="desc: newest first; asc: oldest first")
        ] = "desc",
    ) -> Response:
        rows = await chat.db.get_messages(
            room.id,
            after_seq=after,
            before_seq=before,
            limit=limit + 1,
            ascending=order == "asc",
        )
        has_more = len(rows) > limit
        page = rows[:limit]
        senders = await _senders(chat, room.members)
        return json_response(
            {
                "messages": [
                    codec.message_dict(m, senders.get(m.sender_id), chat.zone) for m in page
                ],
                "hasMore": has_more,
                "nextCursor": page[-1].seq if has_more else None,
            }
        )

    @router.post(
        "/rooms/{roomId}/messages",
        status_code=201,
        response_model=MessageOut,
        summary="Send a message (while the socket is down)",
        description="The same validation, tempId idempotency and broadcast as STOMP SEND "
        "`/app/chat/{roomId}`: the answer comes after the commit, and a repeated tempId is "
        "answered with the stored message (stored and broadcast once).",
        openapi_extra=_json_body(send_body_schema(settings.max_text_length)),
        responses=responses(400, *_ROOM_ERRORS, 413, 429, 503),
    )
    async def send_message(chat: Chat, user: Caller, room: Room, request: Request) -> Response:
        body = await read_body(request, body_limit)
        metrics.MESSAGES_RECEIVED.labels("rest").inc()
        send = parse_send_request(body, max_text_length=settings.max_text_length)
        message = await (await chat.accept(user, room.id, send))
        return Response(
            codec.message_json(message, user, chat.zone),
            status_code=201,
            media_type="application/json",
        )

    @router.post(
        "/rooms/{roomId}/read",
        response_model=ReadResult,
        summary="Mark the partner's messages read",
        description="The same as STOMP SEND `/app/chat/{roomId}/read`: the READ_RECEIPT of the "
        "messages that changed is broadcast to the couple, and returned.",
        openapi_extra=_json_body(read_body_schema()),
        responses=responses(400, *_ROOM_ERRORS, 413, 429, 503),
    )
    async def mark_read(chat: Chat, user: Caller, room: Room, request: Request) -> Response:
        marks = parse_read_request(await read_body(request, body_limit))
        changed = await chat.mark_read(user, room.id, marks)
        read_at = changed[0].read_at if changed else None
        return json_response(
            {
                "type": "READ_RECEIPT",
                "readerId": str(user.id),
                "messageIds": [str(m.id) for m in changed],
                "seqs": [m.seq for m in changed],
                "readAt": codec.format_timestamp(read_at, chat.zone) if read_at else None,
            }
        )

    return router


async def _senders(
    chat: ChatService, members: tuple[uuid.UUID, uuid.UUID]
) -> dict[uuid.UUID, User]:
    found: dict[uuid.UUID, User] = {}
    for member in members:
        user = await chat.user(member)
        if user is not None:
            found[member] = user
    return found
