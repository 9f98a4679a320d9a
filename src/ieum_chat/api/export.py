"""``GET /chat/export``: the caller's couple history as a ZIP archive, made while it is sent.

The archive holds ``messages.jsonl``, every message of the couple in seq order, one JSON object
a line, each exactly as ``GET /chat/rooms/{roomId}/messages`` renders it for the caller (the
same :meth:`History.page`, ascending: the messages the caller deleted for themselves are not
there), deflated; then ``media/{name}`` for every file the upload backend holds for the couple,
stored as they are (images do not deflate).

Nothing is held whole. The standard library's :mod:`zipfile` writes to a sink that cannot
seek, so each entry's sizes and CRC follow its bytes in a data descriptor, and
``messages.jsonl``, whose size is not known ahead, is ZIP64 from the start. What it wrote is
sent after each page of messages and each chunk of a file, and the next is made only once the
server has handed that to the client's connection (uvicorn's flow control). A running export
holds a page of messages, a chunk of a file and the central directory (one small record per
entry), however long the history.

The event loop reads and renders the pages (the history route's code). The blocking work,
deflating a page and reading a chunk of a file (disk or S3) into the archive, runs on a worker
thread of the export's own, one step at a time; its clean-up (closing the file or the S3
stream) queues behind a step still running when the client goes away, so nothing is closed
under a read.

An export is heavy: one at a time per user and :data:`MAX_EXPORTS` at a time per node; more
are answered 429 RATE_LIMITED.
"""

from __future__ import annotations

import asyncio
import logging
import stat
import time
import uuid
import zipfile
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from typing import IO, Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ieum_chat.api.deps import Caller
from ieum_chat.api.errors import responses
from ieum_chat.chat import codec
from ieum_chat.chat.history import History
from ieum_chat.errors import NotFound, RateLimited
from ieum_chat.uploads import THUMBNAIL_SUFFIX, StoredFile, UploadBackend

__all__ = ["EXPORT_PAGE", "MAX_EXPORTS", "ExportSlots", "build_export_router", "export_archive"]

log = logging.getLogger(__name__)

EXPORT_PAGE = 200  # messages read, rendered and deflated per step
MAX_EXPORTS = 4  # exports running at once on one node

_T = TypeVar("_T")
_ZipTime = tuple[int, int, int, int, int, int]


class ExportSlots:
    """Who is exporting on this node: one export per user, ``limit`` in all."""

    def __init__(self, limit: int = MAX_EXPORTS) -> None:
        if limit < 1:
            raise ValueError("an export limit must be at least 1")
        self.limit = limit
        self._users: set[uuid.UUID] = set()

    def acquire(self, user_id: uuid.UUID) -> None:
        """Take the slot of ``user_id``, or raise :class:`RateLimited`."""
        if user_id in self._users:
            raise RateLimited("an export of yours is running; wait until it has finished")
        if len(self._users) >= self.limit:
            raise RateLimited("too many exports are running on this server; retry shortly")
        self._users.add(user_id)

    def release(self, user_id: uuid.UUID) -> None:
        self._users.discard(user_id)

    def __len__(self) -> int:
        return len(self._users)


class _Sink:
    """What zipfile writes to: it keeps the bytes until they are taken. Without ``tell`` and
    ``seek``, zipfile writes a streamable archive (never goes back to patch a header)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        """zipfile flushes after each entry: there is nothing to flush to."""

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class _Held:
    """What an export has open on the storage, closed when it ends however it ends."""

    def __init__(self) -> None:
        self.keys: Iterator[str] | None = None
        self.file: StoredFile | None = None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        close_keys: Callable[[], None] | None = getattr(self.keys, "close", None)
        if close_keys is not None:
            close_keys()
        self.keys = None


def _zip_time(epoch: float, zone: ZoneInfo) -> _ZipTime:
    """A ZIP entry's time is a local date-time without a zone (MS-DOS's, 1980 to 2107): the
    zone the history's timestamps are rendered in."""
    local = datetime.fromtimestamp(epoch, zone)
    year = min(max(local.year, 1980), 2107)
    return (year, local.month, local.day, local.hour, local.minute, local.second)


def _entry(name: str, modified: float, zone: ZoneInfo, compress_type: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, _zip_time(modified, zone))
    info.compress_type = compress_type
    info.external_attr = (stat.S_IFREG | 0o644) << 16  # a plain readable file once unpacked
    return info


def _next_key(keys: Iterator[str]) -> str | None:
    return next(keys, None)


def _copy_chunk(chunks: Iterator[bytes], entry: IO[bytes]) -> bool:
    """Read the next chunk of a file into its archive entry; False once the file is read."""
    chunk = next(chunks, None)
    if chunk is None:
        return False
    entry.write(chunk)
    return True


async def export_archive(
    history: History,
    uploads: UploadBackend | None,
    couple_id: uuid.UUID,
    viewer_id: uuid.UUID,
    zone: ZoneInfo,
) -> AsyncGenerator[bytes, None]:
    """The ZIP archive of the couple as ``viewer_id`` sees it, piece by piece as it is made.
    A failure of the database or the storage raises: the response is cut short, and the
    client sees an incomplete transfer rather than a well-formed but partial archive."""
    loop = asyncio.get_running_loop()
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chat-export")

    def run(call: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        return loop.run_in_executor(worker, call, *args)

    held = _Held()
    sink = _Sink()
    archive = zipfile.ZipFile(sink, "w", allowZip64=True)  # type: ignore[call-overload]
    started = time.monotonic()
    sent = messages = files = 0
    try:
        info = _entry("messages.jsonl", time.time(), zone, zipfile.ZIP_DEFLATED)
        entry = archive.open(info, "w", force_zip64=True)
        after = 0
        while True:
            page = await history.page(
                couple_id, viewer_id, after=after, limit=EXPORT_PAGE, ascending=True
            )
            if page.messages:
                messages += len(page.messages)
                lines = b"".join(codec.dumps(message) + b"\n" for message in page.messages)
                await run(entry.write, lines)
                if data := sink.take():
                    sent += len(data)
                    yield data
            if page.next_cursor is None:
                break
            after = page.next_cursor
        await run(entry.close)

        if uploads is not None:
            held.keys = uploads.iter_keys(couple_id)
            while (key := await run(_next_key, held.keys)) is not None:
                if key.endswith(THUMBNAIL_SUFFIX):  # made by the server from an upload
                    continue
                held.file = await run(uploads.open_file, key)
                if held.file is None:  # deleted since it was listed
                    continue
                name = f"media/{key.rpartition('/')[2]}"
                info = _entry(name, held.file.modified, zone, zipfile.ZIP_STORED)
                info.file_size = held.file.size  # lets zipfile choose ZIP64 past 4 GiB
                entry = archive.open(info, "w")
                chunks = iter(held.file)
                while await run(_copy_chunk, chunks, entry):
                    data = sink.take()
                    sent += len(data)
                    yield data
                await run(entry.close)
                await run(held.file.close)
                held.file = None
                files += 1
        archive.close()  # the central directory
        data = sink.take()
        sent += len(data)
        yield data
        log.info(
            "exported couple %s: %d messages, %d files, %d bytes in %.1f s",
            couple_id,
            messages,
            files,
            sent,
            time.monotonic() - started,
        )
    except Exception as exc:
        log.warning("export of couple %s failed after %d bytes: %r", couple_id, sent, exc)
        raise
    finally:
        worker.submit(held.close)
        worker.shutdown(wait=False)


class _ArchiveResponse(StreamingResponse):
    """The streamed archive. Its generator is closed and its slot freed however the response
    ends: sent, failed, or cut off when the client goes away (Starlette then stops iterating
    without closing the generator)."""

    def __init__(
        self, archive: AsyncGenerator[bytes, None], *, filename: str, release: Callable[[], None]
    ) -> None:
        super().__init__(
            archive,
            media_type="application/zip",
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )
        self._archive = archive
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                await self._archive.aclose()
            finally:
                self._release()


def build_export_router() -> APIRouter:
    router = APIRouter(prefix="/chat", tags=["chat"])
    slots = ExportSlots()

    @router.get(
        "/export",
        response_class=StreamingResponse,
        summary="The couple's history as a ZIP archive",
        description="`messages.jsonl`: every message of the caller's couple in seq order, one "
        "JSON object a line, each as `GET /chat/rooms/{roomId}/messages` shows it to the "
        "caller (without those they deleted for themselves); `media/`: every file uploaded "
        "for the couple. Streamed as it is made (chunked, no Content-Length). One export "
        "at a time per user.",
        responses={
            200: {
                "description": "the archive (`ieum-chat-{coupleId}.zip`)",
                "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            },
            **responses(
                401,
                404,
                429,
                503,
                s404="the caller is not in a couple (NOT_FOUND)",
                s429="an export of the caller's is running, or too many on this server "
                "(RATE_LIMITED)",
            ),
        },
    )
    async def get_export(caller: Caller) -> Response:
        chat, user = caller.chat, caller.user
        couple = await chat.couple_of(user.id)
        if couple is None:
            raise NotFound("you are not in a couple")
        slots.acquire(user.id)
        archive = export_archive(chat.history, chat.uploads, couple.id, user.id, chat.zone)
        return _ArchiveResponse(
            archive,
            filename=f"ieum-chat-{couple.id}.zip",
            release=partial(slots.release, user.id),
        )

    return router
