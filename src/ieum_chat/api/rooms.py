"""The couple's room over REST: room info, history, sending and read marks.

Sending and read marks go through the same :class:`ChatService` calls as STOMP SEND (the same
validation, tempId idempotency, ordering and broadcast): a message sent here reaches every
socket subscribed to ``/topic/couple/{roomId}``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ieum_chat.api.deps import Caller, Room, json_body, json_response, read_body
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
from ieum_chat.config import Settings
from ieum_chat.errors import NotFound
from ieum_chat.observability import metrics

__all__ = ["MAX_PAGE", "build_rooms_router"]

MAX_PAGE = 100

_ROOM_ERRORS = (401, 403, 404)


def build_rooms_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/chat", tags=["chat"])
    body_limit = settings.max_frame_size  # a REST body may be as large as a STOMP frame

    @router.get(
        "/room",
        response_model=RoomOut,
        summary="The caller's couple room",
        responses=responses(401, 404, 503, s404="the caller is not in a couple (NOT_FOUND)"),
    )
    async def get_room(caller: Caller) -> Response:
        chat, user = caller.chat, caller.user
        room = await chat.db.room_view(user.id)
        if room is None:
            raise NotFound("you are not in a couple")
        partner = await chat.user(room.couple.partner_of(user.id))
        if partner is None:  # a couple row outliving its user; the schema's FKs forbid it
            raise NotFound("the partner of this couple does not exist")
        last = room.last
        rendered = await chat.history.render_messages([last], as_of=room.position) if last else None
        return json_response(
            {
                "id": str(room.couple.id),
                "partner": {
                    "id": str(partner.id),
                    "name": partner.name,
                    "profileImage": partner.profile_image,
                    "online": await chat.presence.online(partner.id),
                },
                "unreadCount": room.unread,
                "lastMessage": rendered[0] if rendered else None,
            }
        )

    @router.get(
        "/rooms/{roomId}/messages",
        response_model=HistoryPage,
        summary="History, by seq cursor",
        description="Newest first by default. `before`/`after` bound the seq range (exclusive); "
        "follow `nextCursor` for the next page. Pages come from the (couple_id, seq) index: "
        "any depth costs the same. Messages as they are now (edited, unsent as tombstones, "
        "reactions, replyTo previews), without those the caller deleted for themselves; "
        "changes are events of the stream (STOMP), not entries of this list, so seqs may "
        "skip.",
        responses=responses(400, *_ROOM_ERRORS, 503),
    )
    async def get_messages(
        *,
        access: Room,
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
        chat, user, room = access.chat, access.user, access.couple
        page = await chat.history.page(
            room.id, user.id, after=after, before=before, limit=limit, ascending=order == "asc"
        )
        return json_response(
            {"messages": page.messages, "hasMore": page.has_more, "nextCursor": page.next_cursor}
        )

    @router.post(
        "/rooms/{roomId}/messages",
        status_code=201,
        response_model=MessageOut,
        summary="Send a message (while the socket is down)",
        description="The same validation, tempId idempotency and broadcast as STOMP SEND "
        "`/app/chat/{roomId}`: the answer comes after the commit, and a repeated tempId is "
        "answered with the stored message (stored and broadcast once).",
        openapi_extra=json_body(send_body_schema(settings.max_text_length)),
        responses=responses(400, *_ROOM_ERRORS, 413, 429, 503),
    )
    async def send_message(access: Room, request: Request) -> Response:
        chat, user, room = access.chat, access.user, access.couple
        body = await read_body(request, body_limit)
        metrics.MESSAGES_RECEIVED.labels("rest").inc()
        send = parse_send_request(body, max_text_length=settings.max_text_length)
        message = await (await chat.accept(user, room.id, send))
        return json_response((await chat.history.render_messages([message]))[0], status_code=201)

    @router.post(
        "/rooms/{roomId}/read",
        response_model=ReadResult,
        summary="Mark the partner's messages read",
        description="The same as STOMP SEND `/app/chat/{roomId}/read`: the READ_RECEIPT of the "
        "messages that changed is broadcast to the couple (with its seq in the couple's "
        "stream), and returned; when nothing changed, nothing is broadcast and `seq` and "
        "`readAt` are null.",
        openapi_extra=json_body(read_body_schema()),
        responses=responses(400, *_ROOM_ERRORS, 413, 429, 503),
    )
    async def mark_read(access: Room, request: Request) -> Response:
        chat, user, room = access.chat, access.user, access.couple
        marks = parse_read_request(await read_body(request, body_limit))
        applied = await chat.mark_read(user, room.id, marks)
        if applied.event is not None:
            return json_response(codec.event_dict(applied.event, chat.zone))
        return json_response(
            {
                "type": "READ_RECEIPT",
                "coupleId": str(room.id),
                "seq": None,
                "readerId": str(user.id),
                "messageIds": [],
                "seqs": [],
                "readAt": None,
            }
        )

    return router
