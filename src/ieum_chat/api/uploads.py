"""Presigned image uploads, and (local backend) the signed PUT and the files themselves.

Flow: ``POST /chat/rooms/{roomId}/uploads`` gives an upload URL and the final ``imageUrl``;
the client uploads there (to this server, or straight to S3), then sends an IMAGE message
with ``imageUrl``. With the local backend this server checks the signature, the expiry, the
declared type (header and magic bytes) and size, stores the file (once: a second PUT of one
URL is 409 CONFLICT, since served files are ``immutable``) and serves it back at
``GET /uploads/{coupleId}/{name}``; unguessable names make those URLs the capability.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import ValidationError

from ieum_chat.api.deps import Chat, Room, json_response, read_body
from ieum_chat.api.errors import responses, summarize_errors
from ieum_chat.api.models import UploadDone, UploadRequest, UploadTicketOut
from ieum_chat.chat import codec
from ieum_chat.chat.service import ChatService
from ieum_chat.config import Settings
from ieum_chat.errors import BadRequest, NotFound, UnsupportedMediaType
from ieum_chat.uploads import (
    CONTENT_TYPES,
    LocalUploads,
    UploadBackend,
    content_type_of,
)
from ieum_chat.uploads.kinds import SNIFF_BYTES, sniff

__all__ = ["build_uploads_router"]

_REQUEST_LIMIT = 4096  # {"contentType": ..., "size": ...} is far smaller

# Served files are inert: never sniffed into HTML, never allowed to run anything.
_FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "public, max-age=31536000, immutable",
}

_BINARY: dict[str, Any] = {
    ctype: {"schema": {"type": "string", "format": "binary"}} for ctype in CONTENT_TYPES
}

CoupleSegment = Annotated[str, Path(alias="coupleId", description="the room the file is for")]
NameSegment = Annotated[str, Path(description="the file name the server chose")]


def _backend(chat: ChatService) -> UploadBackend:
    if chat.uploads is None:
        raise NotFound("uploads are not configured on this server")
    return chat.uploads


def _local(chat: ChatService) -> LocalUploads:
    backend = _backend(chat)
    if not isinstance(backend, LocalUploads):
        raise NotFound("this server's uploads go to object storage, not here")
    return backend


def _upload_request_schema(max_bytes: int) -> dict[str, Any]:
    schema = UploadRequest.model_json_schema()
    schema["properties"]["size"]["maximum"] = max_bytes
    schema["example"] = {"contentType": "image/jpeg", "size": 123456}
    return schema


def build_uploads_router(settings: Settings) -> APIRouter:
    router = APIRouter(tags=["uploads"])

    @router.post(
        "/chat/rooms/{roomId}/uploads",
        response_model=UploadTicketOut,
        summary="A presigned URL to upload one image",
        description="Upload the file as the ticket says before it expires, then send an IMAGE "
        "message with its `imageUrl`.",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": _upload_request_schema(max(settings.upload_max_bytes.values()))
                    }
                },
            }
        },
        responses=responses(400, 401, 403, 404, 413, 415, 503),
    )
    async def presign(chat: Chat, room: Room, request: Request) -> Response:
        body = await read_body(request, _REQUEST_LIMIT)
        try:
            wanted = UploadRequest.model_validate_json(body)
        except ValidationError as exc:
            raise BadRequest(summarize_errors(exc.errors(include_url=False))) from None
        backend = _backend(chat)
        now = time.time()
        # Presigning is local computation, but S3 credentials may be fetched on first use.
        ticket = await asyncio.to_thread(
            backend.presign, room.id, wanted.contentType, wanted.size, now=now
        )
        expires = datetime.fromtimestamp(ticket.expires_at, UTC).replace(tzinfo=None)
        return json_response(
            {
                "method": ticket.method,
                "uploadUrl": ticket.upload_url,
                "headers": ticket.headers,
                "fields": ticket.fields,
                "expiresAt": codec.format_timestamp(expires, chat.zone),
                "expiresIn": max(0, int(ticket.expires_at - now)),
                "imageUrl": ticket.image_url,
            }
        )

    @router.put(
        "/uploads/{coupleId}/{name}",
        status_code=201,
        response_model=UploadDone,
        summary="Upload a file to a presigned URL (local backend)",
        description="Use the `uploadUrl` of a ticket as it is; the body is the file, with the "
        "ticket's `Content-Type`, at most the declared size.",
        openapi_extra={"requestBody": {"required": True, "content": _BINARY}},
        responses=responses(
            400,
            403,
            404,
            409,
            413,
            415,
            s400="empty body, or malformed query (BAD_REQUEST)",
            s403="tampered, foreign or expired upload URL (SIGNATURE_INVALID)",
            s404="this server's uploads go to object storage (NOT_FOUND)",
            s409="this upload URL has uploaded its file already: one PUT per URL (CONFLICT)",
            s413="the body is larger than the declared size (PAYLOAD_TOO_LARGE)",
            s415="Content-Type or file contents are not the declared type",
        ),
    )
    async def put_file(
        *,
        chat: Chat,
        request: Request,
        couple_id: CoupleSegment,
        name: NameSegment,
        content_type: Annotated[str, Query(alias="type", description="the declared type")],
        size: Annotated[int, Query(description="the declared size, bytes")],
        expires: Annotated[int, Query(description="epoch seconds")],
        sig: Annotated[str, Query(description="the server's signature")],
    ) -> Response:
        backend = _local(chat)
        key = f"{couple_id}/{name}"
        backend.verify(key, content_type, size, expires, sig, now=time.time())
        backend.check_unused(key)
        sent_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if sent_type != content_type:
            raise UnsupportedMediaType(
                f"Content-Type {sent_type[:100]!r} is not the declared {content_type!r}"
            )
        data = await read_body(request, size)
        if not data:
            raise BadRequest("the body is empty")
        if not sniff(content_type, data[:SNIFF_BYTES]):
            raise UnsupportedMediaType(f"the file is not {content_type}")
        await backend.store(key, data)
        return json_response(
            {"imageUrl": backend.image_url(key), "contentType": content_type, "size": len(data)},
            201,
        )

    @router.get(
        "/uploads/{coupleId}/{name}",
        response_class=FileResponse,
        summary="An uploaded image (local backend)",
        responses={
            200: {"description": "the image", "content": _BINARY},
            **responses(404, s404="no such file (NOT_FOUND)"),
        },
    )
    async def get_file(chat: Chat, couple_id: CoupleSegment, name: NameSegment) -> Response:
        backend = _local(chat)
        key = f"{couple_id}/{name}"
        path = backend.path_for(key)
        if path is None or not path.is_file():
            raise NotFound("no such file")
        return FileResponse(path, media_type=content_type_of(key), headers=_FILE_HEADERS)

    return router
