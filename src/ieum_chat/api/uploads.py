"""Uploads: tickets, the check once a file is uploaded, and (local backend) the signed PUT
and the files themselves.

Flow: ``POST /chat/rooms/{roomId}/uploads`` gives an upload URL, the final ``mediaUrl`` and a
``completeUrl``; the client uploads there (to this server, or straight to S3), then POSTs
``completeUrl``: the server checks that the bytes are what the content type says, drops a
photo's EXIF, makes the thumbnail and publishes the file at ``mediaUrl``. With the local
backend the PUT does all that itself (its answer is the checked upload; a second PUT of one
URL is 409 CONFLICT, since served files are ``immutable``) and files are served back at
``GET /uploads/{coupleId}/{name}``, with ranges; unguessable names make those URLs the
capability. Then the client sends a message of the upload's kind naming ``mediaUrl``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, BinaryIO

import anyio
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from ieum_chat.api.deps import Chat, Room, body_chunks, json_response, read_body
from ieum_chat.api.errors import responses, summarize_errors
from ieum_chat.api.models import UploadOut, UploadRequest, UploadTicketOut
from ieum_chat.chat import codec
from ieum_chat.chat.media import USED
from ieum_chat.chat.service import ChatService
from ieum_chat.config import Settings
from ieum_chat.errors import (
    BadRequest,
    Conflict,
    NotFound,
    UnsupportedMediaType,
)
from ieum_chat.media_types import CONTENT_TYPES as MEDIA_TYPES
from ieum_chat.media_types import SNIFF_BYTES, Kind, normalize, sniff
from ieum_chat.store.uploads import Upload
from ieum_chat.uploads import (
    CONTENT_TYPES,
    LocalUploads,
    UploadBackend,
    content_disposition,
    content_type_of,
    public_base_url,
)

__all__ = ["build_uploads_router"]

_REQUEST_LIMIT = 4096  # {"contentType": ..., "size": ..., "fileName": ...} is far smaller

# Served files are inert: never sniffed into HTML, never allowed to run anything.
_FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "public, max-age=31536000, immutable",
}

_BYTES = {"type": "string", "format": "binary"}
# A file of each type; text is text (a binary schema there is bytes no text body can be).
_BINARY: dict[str, Any] = {
    ctype: {"schema": {"type": "string"} if ctype.startswith("text/") else _BYTES}
    for ctype in CONTENT_TYPES
}

CoupleSegment = Annotated[str, Path(alias="coupleId", description="the room the file is for")]
NameSegment = Annotated[str, Path(description="the file name the server chose")]
UploadId = Annotated[str, Path(alias="uploadId", description="the ticket's uploadId")]


def _backend(chat: ChatService) -> UploadBackend:
    if chat.uploads is None:
        raise NotFound("uploads are not configured on this server")
    return chat.uploads


def _local(chat: ChatService) -> LocalUploads:
    backend = _backend(chat)
    if not isinstance(backend, LocalUploads):
        raise NotFound("this server's uploads go to object storage, not here")
    return backend


def _upload_request_schema(settings: Settings) -> dict[str, Any]:
    schema = UploadRequest.model_json_schema()
    schema["properties"]["size"]["maximum"] = max(settings.upload_max_bytes.values())
    schema["properties"]["contentType"]["enum"] = list(settings.upload_content_types)
    schema["example"] = {"contentType": "audio/mp4", "size": 123456}
    return schema


def _limits(settings: Settings) -> str:
    return ", ".join(f"{k.value} {v} bytes" for k, v in settings.upload_max_bytes.items())


def upload_json(upload: Upload) -> dict[str, Any]:
    """A checked upload as the PUT and ``completeUrl`` answer it (:class:`UploadOut`)."""
    media = upload.media
    return {
        "uploadId": upload.id,
        "kind": upload.kind,
        "contentType": upload.content_type,
        "size": upload.size,
        "mediaUrl": upload.url,
        "imageUrl": upload.url if upload.kind == Kind.IMAGE else None,
        "thumbnailUrl": media.thumbnail_url if media else None,
        "durationMs": media.duration_ms if media else None,
        "width": media.width if media else None,
        "height": media.height if media else None,
        "fileName": upload.file_name,
    }


async def _receive(request: Request, path: FilePath, limit: int) -> bytes:
    """Stream the body into ``path`` (413 past ``limit`` bytes); its first bytes back."""
    head = b""
    with path.open("wb") as out:
        async for chunk in body_chunks(request, limit):
            if len(head) < SNIFF_BYTES:
                head += chunk[: SNIFF_BYTES - len(head)]
            await asyncio.to_thread(out.write, chunk)
    return head


def build_uploads_router(settings: Settings) -> APIRouter:
    router = APIRouter(tags=["uploads"])
    base_url = public_base_url(settings)

    @router.post(
        "/chat/rooms/{roomId}/uploads",
        response_model=UploadTicketOut,
        summary="A presigned URL to upload one image, voice note, video or file",
        description="Upload the file as the ticket says before it expires, POST its "
        "`completeUrl` (the local backend's PUT has done that already), then send a message "
        f"of its `kind` with its `mediaUrl`. Limits: {_limits(settings)}; the couple's "
        f"uploads of a day ({settings.timezone}): {settings.upload_daily_bytes} bytes.",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _upload_request_schema(settings)}},
            }
        },
        responses=responses(
            400,
            401,
            403,
            404,
            413,
            415,
            429,
            503,
            s413="over the kind's size limit (PAYLOAD_TOO_LARGE)",
            s429="the couple's uploads of the day are used up (QUOTA_EXCEEDED; Retry-After: "
            "seconds until the day ends)",
        ),
    )
    async def presign(access: Room, request: Request) -> Response:
        chat, user, room = access.chat, access.user, access.couple
        body = await read_body(request, _REQUEST_LIMIT)
        try:
            wanted = UploadRequest.model_validate_json(body)
        except ValidationError as exc:
            raise BadRequest(summarize_errors(exc.errors(include_url=False))) from None
        made = await chat.media.ticket(
            user.id, room.id, wanted.contentType, wanted.size, wanted.fileName
        )
        ticket, upload = made.ticket, made.upload
        expires = datetime.fromtimestamp(ticket.expires_at, UTC).replace(tzinfo=None)
        return json_response(
            {
                "uploadId": upload.id,
                "kind": upload.kind,
                "method": ticket.method,
                "uploadUrl": ticket.upload_url,
                "headers": ticket.headers,
                "fields": ticket.fields,
                "expiresAt": codec.format_timestamp(expires, chat.zone),
                "expiresIn": max(0, int(ticket.expires_at - time.time())),
                "mediaUrl": upload.url,
                "imageUrl": upload.url if upload.kind == Kind.IMAGE else None,
                "completeUrl": f"{base_url}/chat/rooms/{room.id}/uploads/{upload.id}/complete",
            }
        )

    @router.post(
        "/chat/rooms/{roomId}/uploads/{uploadId}/complete",
        response_model=UploadOut,
        summary="Check an uploaded file and publish it",
        description="Call once the file is uploaded to the ticket's URL. The server checks "
        "that the bytes are what the content type says (decoding images, probing audio and "
        "video), removes a photo's EXIF (its location), makes the thumbnail of an image or "
        "a video, and publishes the file at `mediaUrl`. Idempotent: a published upload is "
        "answered as it is.",
        responses=responses(
            401,
            403,
            404,
            409,
            415,
            503,
            s404="no such upload in this room, or it expired (NOT_FOUND)",
            s409="nothing was uploaded to the ticket's URL yet (CONFLICT)",
            s415="the file is not what its content type says, or cannot be decoded "
            "(UNSUPPORTED_MEDIA_TYPE); nothing is kept",
        ),
    )
    async def complete(access: Room, upload_id: UploadId) -> Response:
        chat, room = access.chat, access.couple
        upload = await chat.media.complete(room.id, upload_id)
        return json_response(upload_json(upload))

    @router.put(
        "/uploads/{coupleId}/{name}",
        status_code=201,
        response_model=UploadOut,
        summary="Upload a file to a presigned URL (local backend)",
        description="Use the `uploadUrl` of a ticket as it is; the body is the file, with the "
        "ticket's `Content-Type`, at most the declared size. The file is checked and "
        "published before the answer (no `completeUrl` call is needed).",
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
            s415="Content-Type is not the declared one, or the file is not what it says or "
            "cannot be decoded (UNSUPPORTED_MEDIA_TYPE); nothing is kept",
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
        upload = await chat.media.upload_of(None, name.split(".", 1)[0])
        if upload.key != key or upload.published:
            raise Conflict(USED)
        backend.check_unused(key)
        sent_type = normalize(request.headers.get("content-type", ""))
        if sent_type != content_type:
            raise UnsupportedMediaType(
                f"Content-Type {sent_type[:100]!r} is not the declared {content_type!r}"
            )
        with chat.media.workdir() as folder:
            path = FilePath(folder) / "upload"
            head = await _receive(request, path, size)
            if not head:
                raise BadRequest("the body is empty")
            if not sniff(content_type, head):
                raise UnsupportedMediaType(f"the file is not {content_type}")
            done = await chat.media.publish(upload, path, FilePath(folder))
        return json_response(upload_json(done), 201)

    @router.get(
        "/uploads/{coupleId}/{name}",
        response_class=FileResponse,
        summary="An uploaded file (local backend)",
        description="Ranges (RFC 9110) are served: audio and video seek. Files shared as "
        "FILE come as attachments under their names.",
        responses={
            200: {"description": "the file", "content": _BINARY},
            206: {"description": "the requested range of the file", "content": _BINARY},
            **responses(404, 416, s404="no such file (NOT_FOUND)"),
        },
    )
    async def get_file(chat: Chat, couple_id: CoupleSegment, name: NameSegment) -> Response:
        backend = _local(chat)
        key = f"{couple_id}/{name}"
        file = None
        if backend.path_for(key) is not None:
            file = await asyncio.to_thread(backend.open_handle, key)
        if file is None:
            raise NotFound("no such file")
        try:
            content_type = content_type_of(key)
            shared_as = None
            if MEDIA_TYPES[content_type].kind is Kind.FILE:  # never shown inline: downloaded
                upload = await chat.db.upload_by_url(backend.image_url(key))
                shared_as = (upload.file_name if upload is not None else None) or name
        except BaseException:
            file.close()
            raise
        headers = {**_FILE_HEADERS, "Content-Disposition": content_disposition(shared_as)}
        if content_type.startswith("text/"):
            content_type += "; charset=utf-8"
        return _OpenedFileResponse(file, media_type=content_type, headers=headers)

    return router


class _OpenedFileResponse(FileResponse):
    """A file served from the descriptor the handler opened, not from its path: a file
    deleted once the answer is under way (its message unsent, its couple erased) still goes
    out whole, as the headers taken from that descriptor promised; one deleted before is a
    404. Starlette opens the path for the body after sending the headers: a download that
    met the deletion in between was cut off after them."""

    def __init__(self, file: BinaryIO, **kwargs: Any) -> None:
        self._file = file
        super().__init__(file.name, stat_result=os.fstat(file.fileno()), **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._file.close()

    @asynccontextmanager
    async def _open_file(self) -> AsyncIterator[anyio.AsyncFile[bytes]]:
        yield anyio.wrap_file(self._file)  # closed once the response is done
