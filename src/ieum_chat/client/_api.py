"""`ChatApi`: what a member does over REST beside the socket; for now, uploading media.

    async with ChatApi("http://127.0.0.1:8080", token) as api:
        photo = await api.upload(room_id, Path("sunset.jpg"), "image/jpeg")
        note = await api.upload(room_id, recording, "audio/webm")
    await client.send_upload(photo, "노을 보세요")
    await client.send_audio(note.media_url)

An upload is three requests (README "REST"): the ticket (``POST /chat/rooms/{roomId}/
uploads``), the bytes where the ticket says (a PUT to this server, or a form POST straight to
object storage), and the completion (``POST completeUrl``), after which the server has checked
the file and made its thumbnail. The member's token goes to this server only: never to the
upload URL, which is signed by itself (and object storage refuses a second credential).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import uuid
from datetime import tzinfo
from pathlib import Path
from types import TracebackType

import httpx

from ._client import TokenProvider
from ._errors import UploadError, upload_error
from ._media import UploadResult, UploadTicket, parse_result, parse_ticket

__all__ = ["ChatApi"]

# The element object storage names its error with (an XML body: read, never parsed as XML).
_S3_CODE = re.compile(rb"<Code>([A-Za-z0-9._-]{1,64})</Code>")
_S3_MESSAGE = re.compile(rb"<Message>([^<]{0,300})</Message>")
# Media kinds' types; any other is a document, whose message shows the file's name.
_MEDIA_PREFIXES = ("image/", "audio/", "video/")


class ChatApi:
    """The member's REST API of one server (``base_url``: ``http://host:port``).
    ``token_provider`` is called before every request (a JWT may expire between two)."""

    def __init__(
        self,
        base_url: str,
        token_provider: TokenProvider,
        *,
        timeout: float = 30.0,
        timezone: tzinfo | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._token_provider = token_provider
        self._tz = timezone
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> ChatApi:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def upload(
        self,
        room_id: uuid.UUID | str,
        data: bytes | str | os.PathLike[str],
        content_type: str,
        file_name: str | None = None,
    ) -> UploadResult:
        """Upload one file (``data``: its bytes, or the path of a file, read whole) to the
        room (the couple's id) and return it checked and stored, ready to send.

        ``file_name`` is what a FILE message shows (at most 255 characters, no path); for a
        path of a document (a type that is not image/, audio/ or video/) it defaults to the
        path's name. Raises UploadTooLarge (413), UnsupportedMedia (415), QuotaExceeded
        (429) or UploadError (anything else refused) with the server's code and detail.
        """
        if isinstance(data, bytes | bytearray | memoryview):
            body = bytes(data)
        else:
            path = Path(data)
            body = await asyncio.to_thread(path.read_bytes)
            if file_name is None and not content_type.lower().startswith(_MEDIA_PREFIXES):
                file_name = path.name
        if not body:
            raise ValueError("an upload needs at least one byte")
        ticket = await self.presign(room_id, content_type, len(body), file_name)
        await self.transfer(ticket, body, file_name)
        return await self.complete(ticket)

    async def presign(
        self,
        room_id: uuid.UUID | str,
        content_type: str,
        size: int,
        file_name: str | None = None,
    ) -> UploadTicket:
        """Step one alone: the ticket for a file of ``size`` bytes of ``content_type``."""
        body: dict[str, object] = {"contentType": content_type, "size": size}
        if file_name is not None:
            body["fileName"] = file_name
        room = str(room_id if isinstance(room_id, uuid.UUID) else uuid.UUID(room_id))
        response = await self._api("POST", f"/chat/rooms/{room}/uploads", body)
        return parse_ticket(_json(response), response.status_code, self._tz)

    async def complete(self, ticket: UploadTicket) -> UploadResult:
        """Step three alone: the server checks the bytes uploaded for ``ticket`` (idempotent)."""
        response = await self._api("POST", ticket.complete_url)
        return parse_result(_json(response), response.status_code)

    async def transfer(
        self, ticket: UploadTicket, body: bytes, file_name: str | None = None
    ) -> None:
        """Step two alone: the bytes where ``ticket`` says, without the member's token."""
        if ticket.method == "PUT":
            response = await self._http.put(ticket.upload_url, content=body, headers=ticket.headers)
        else:
            content_type = ticket.fields.get("Content-Type", "application/octet-stream")
            response = await self._http.post(
                ticket.upload_url,
                data=ticket.fields,  # httpx writes the fields first, then the file, as S3 needs
                files={"file": (file_name or "upload", body, content_type)},
            )
        if not response.is_success:
            raise _refusal(response)

    async def _api(self, method: str, path: str, body: object = None) -> httpx.Response:
        token = self._token_provider()
        if inspect.isawaitable(token):
            token = await token
        if not isinstance(token, str) or not token:
            raise TypeError("token_provider must return a non-empty str")
        headers = {"Authorization": f"Bearer {token}"}
        response = await self._http.request(method, path, json=body, headers=headers)
        if not response.is_success:
            raise _refusal(response)
        return response


def _json(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        raise UploadError(
            response.status_code, "UNEXPECTED", f"not JSON: {response.text[:200]!r}"
        ) from None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        return None  # absent, or an HTTP date: the server sends seconds
    return seconds if seconds >= 0 else None


def _refusal(response: httpx.Response) -> UploadError:
    """The error of a refused step: the server's JSON error (code, detail), object storage's
    XML error, or the status alone."""
    code, detail = "UNEXPECTED", ""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("code"), str):
        code = answer["code"]
        detail = str(answer.get("detail") or answer.get("message") or "")
    elif (found := _S3_CODE.search(response.content)) is not None:
        code = found.group(1).decode()
        said = _S3_MESSAGE.search(response.content)
        detail = said.group(1).decode(errors="replace") if said else ""
    else:
        detail = response.text[:200]
    return upload_error(response.status_code, code, detail, retry_after=_retry_after(response))
