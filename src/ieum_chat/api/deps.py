"""What every REST route needs: the chat service, the caller, the room, a bounded body."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, Path, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import ClientDisconnect

from ieum_chat.chat import codec
from ieum_chat.chat.service import ChatService
from ieum_chat.errors import BadRequest, ChatError, NotFound, PayloadTooLarge
from ieum_chat.store.records import Couple, User

__all__ = [
    "Caller",
    "CallerAccess",
    "Chat",
    "Room",
    "RoomAccess",
    "RoomId",
    "chat_service",
    "current_caller",
    "current_room",
    "json_body",
    "json_response",
    "read_body",
    "read_object",
]

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="the JWT of the auth service (`sub` = user id, `exp` required)",
)

RoomId = Annotated[
    str,
    Path(
        alias="roomId",
        description="the coupleId (GET /chat/room answers it)",
        json_schema_extra={"format": "uuid"},
    ),
]


def _chat(request: Request) -> ChatService:
    gateway = request.app.state.runtime.require_gateway()
    chat: ChatService = gateway.chat
    return chat


async def chat_service(request: Request) -> ChatService:
    # async: FastAPI runs a plain function dependency on a worker thread, two thread hops
    # for every request that names it
    return _chat(request)


Chat = Annotated[ChatService, Depends(chat_service)]

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


@dataclass(frozen=True, slots=True)
class CallerAccess:
    """What a route acting for the token's user works with: the chat service and the user."""

    chat: ChatService
    user: User


@dataclass(frozen=True, slots=True)
class RoomAccess(CallerAccess):
    """A caller's access to the room of the path: the couple is the caller's own."""

    couple: Couple


# Each of these is one dependency that takes the request, the token and the path itself, not
# a chain of them (the room's on the caller's, both on the service's): FastAPI walks every node
# of an endpoint's dependency tree on each request, cached or not, about 65,000 instructions a
# node (FastAPI 0.165). The chain gave a history page ten nodes where this gives it three, a
# ninth of the page's instructions in the server. The OpenAPI document is the same.


async def current_caller(request: Request, credentials: Credentials) -> CallerAccess:
    """The caller, from ``Authorization: Bearer <jwt>``; AuthError (401) otherwise."""
    chat = _chat(request)
    _, user = await chat.authenticate(credentials.credentials if credentials else None)
    return CallerAccess(chat, user)


Caller = Annotated[CallerAccess, Depends(current_caller)]


async def current_room(request: Request, credentials: Credentials, room_id: RoomId) -> RoomAccess:
    """The caller (as :func:`current_caller`) and the room of the path: 404 if there is none
    (an id that is not a UUID included), 403 if it is another couple's."""
    caller = await current_caller(request, credentials)
    try:
        couple_id = uuid.UUID(room_id)
    except ValueError:
        raise NotFound("no such room") from None
    couple = await caller.chat.room(caller.user.id, couple_id)
    return RoomAccess(caller.chat, caller.user, couple)


Room = Annotated[RoomAccess, Depends(current_room)]


async def body_chunks(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The request body as it arrives, refused with 413 as soon as it passes ``limit`` bytes
    (or declares more), and with 400 when the client goes away before it is whole (a phone
    losing its network): the answer reaches nobody, but nothing half-read is used."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is over {limit} bytes")
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the body is over {limit} bytes")
            yield chunk
    except ClientDisconnect:
        raise BadRequest("the client went away before the body was whole") from None


async def read_body(request: Request, limit: int) -> bytes:
    """The whole request body (see :func:`body_chunks`)."""
    return b"".join([chunk async for chunk in body_chunks(request, limit)])


async def read_object(
    request: Request, limit: int, *, error: type[ChatError] = BadRequest
) -> dict[str, Any]:
    """The body as a JSON object (an empty body: ``{}``); ``error`` if it is not one."""
    body = await read_body(request, limit)
    if not body.strip():
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise error("body is not valid JSON") from None
    if not isinstance(value, dict):
        raise error("body must be a JSON object")
    return value


def json_body(schema: dict[str, object], *, required: bool = True) -> dict[str, object]:
    """``openapi_extra`` documenting a JSON request body of ``schema`` (bodies are read and
    checked by hand, so that every error is the contract's JSON)."""
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": schema}},
        }
    }


def json_response(value: Any, status_code: int = 200) -> Response:
    """``value`` serialised once by the codec (the wire JSON of the socket path)."""
    return Response(codec.dumps(value), status_code=status_code, media_type="application/json")
