"""Uploads: one row per presigned upload, from its ticket to its cleanup.

A row is written when the ticket is handed out (``issued``), under the couple's row lock so
that the day's quota holds however many tickets are asked for at once; it becomes ``ready``
once the bytes were checked and published, ``kept`` when the cleanup found a message naming
it (and never looks at it again), ``doomed`` when its message was unsent (``changes``). The
cleanup (:meth:`UploadsStore.sweep_uploads`) hands back what to delete: doomed uploads, and
those no message names some time after their URL expired.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from ieum_chat.store.pool import AnyRow, SQLBaseStore
from ieum_chat.store.records import Media
from ieum_chat.store.schema import couples, messages, uploads

__all__ = ["Upload", "UploadState", "UploadsStore"]


class UploadState(enum.StrEnum):
    ISSUED = "issued"
    READY = "ready"
    KEPT = "kept"
    DOOMED = "doomed"


@dataclass(frozen=True, slots=True)
class Upload:
    """One upload. ``size`` is the declared size until the check, the stored one after;
    ``media`` is what the check learnt (thumbnail, duration, dimensions), once ready."""

    id: str
    couple_id: uuid.UUID
    uploader_id: uuid.UUID
    key: str
    url: str
    kind: str
    content_type: str
    size: int
    file_name: str | None
    state: UploadState
    created_at: datetime
    expires_at: datetime
    media: Media | None = None
    thumbnail_key: str | None = None

    @property
    def published(self) -> bool:
        """Checked and in place: a message may name it."""
        return self.state in (UploadState.READY, UploadState.KEPT)


_COLUMNS = (
    uploads.c.id,
    uploads.c.couple_id,
    uploads.c.uploader_id,
    uploads.c.key,
    uploads.c.url,
    uploads.c.kind,
    uploads.c.content_type,
    uploads.c.size,
    uploads.c.file_name,
    uploads.c.state,
    uploads.c.created_at,
    uploads.c.expires_at,
    uploads.c.media,
    uploads.c.thumbnail_key,
)


_NAMES = [column.name for column in _COLUMNS]
_STATE = _NAMES.index("state")
_MEDIA = _NAMES.index("media")


def _upload(row: AnyRow) -> Upload:
    values = list(row)
    values[_STATE] = UploadState(values[_STATE])
    values[_MEDIA] = Media.from_json(values[_MEDIA])
    return Upload(*values)


def _used_txn(conn: Connection, couple_id: uuid.UUID, since: datetime) -> int:
    used = conn.execute(
        select(func.coalesce(func.sum(uploads.c.size), 0)).where(
            uploads.c.couple_id == couple_id, uploads.c.created_at >= since
        )
    ).scalar_one()
    return int(used)


def _issue_txn(conn: Connection, upload: Upload, since: datetime, daily_bytes: int) -> int | None:
    # The couple's row lock (as the append path takes it) serialises the quota's readers.
    conn.execute(
        select(couples.c.id).where(couples.c.id == upload.couple_id).with_for_update(key_share=True)
    )
    used = _used_txn(conn, upload.couple_id, since)
    if used + upload.size > daily_bytes:
        return used
    conn.execute(
        insert(uploads).values(
            {column.name: getattr(upload, column.name) for column in _COLUMNS}
            | {"media": None, "state": upload.state.value}
        )
    )
    return None


def _get_txn(conn: Connection, upload_id: str | None, url: str | None) -> Upload | None:
    where = uploads.c.id == upload_id if upload_id is not None else uploads.c.url == url
    row = conn.execute(select(*_COLUMNS).where(where)).first()
    return _upload(row) if row is not None else None


def _finish_txn(
    conn: Connection, upload_id: str, size: int, media: Media, thumbnail_key: str | None
) -> Upload | None:
    conn.execute(
        update(uploads)
        .where(uploads.c.id == upload_id, uploads.c.state == UploadState.ISSUED.value)
        .values(
            state=UploadState.READY.value,
            size=size,
            media=media.to_json(),
            thumbnail_key=thumbnail_key,
        )
    )
    return _get_txn(conn, upload_id, None)


def _sweep_txn(conn: Connection, before: datetime, limit: int) -> list[Upload]:
    due = or_(
        uploads.c.state == UploadState.DOOMED.value,
        and_(
            uploads.c.state.in_((UploadState.ISSUED.value, UploadState.READY.value)),
            uploads.c.expires_at < before,
        ),
    )
    # A message names it (another one than an unsent message, for a doomed one): kept for
    # good, until an unsend dooms it.
    named = exists().where(messages.c.media_url == uploads.c.url)
    conn.execute(update(uploads).where(due, named).values(state=UploadState.KEPT.value))
    rows = conn.execute(
        select(*_COLUMNS).where(due).order_by(uploads.c.expires_at).limit(limit)
    ).all()
    return [_upload(row) for row in rows]


class UploadsStore(SQLBaseStore):
    async def issue_upload(
        self, upload: Upload, *, since: datetime, daily_bytes: int
    ) -> int | None:
        """Record a ticket's upload, unless the couple's uploads since ``since`` (its day's
        start) plus this one pass ``daily_bytes``: then nothing is written and the bytes
        already used are returned. ``None``: recorded."""
        return await self.db_pool.write_txn("issue_upload", _issue_txn, upload, since, daily_bytes)

    async def used_upload_bytes(self, couple_id: uuid.UUID, since: datetime) -> int:
        return await self.db_pool.read_txn("used_upload_bytes", _used_txn, couple_id, since)

    async def get_upload(self, upload_id: str) -> Upload | None:
        return await self.db_pool.read_txn("get_upload", _get_txn, upload_id, None)

    async def upload_by_url(self, url: str) -> Upload | None:
        return await self.db_pool.read_txn("upload_by_url", _get_txn, None, url)

    async def finish_upload(
        self, upload_id: str, *, size: int, media: Media, thumbnail_key: str | None
    ) -> Upload | None:
        """Mark an issued upload ready with what its check found; the row as it is after
        (ready already, or doomed meanwhile: unchanged). ``None``: no such upload."""
        return await self.db_pool.write_txn(
            "finish_upload", _finish_txn, upload_id, size, media, thumbnail_key
        )

    async def sweep_uploads(self, before: datetime, *, limit: int = 500) -> list[Upload]:
        """What the cleanup deletes, oldest first, at most ``limit``: doomed uploads, and
        those whose URL expired before ``before`` and that no message names (the ones a
        message names become ``kept`` here, once)."""
        return await self.db_pool.write_txn("sweep_uploads", _sweep_txn, before, limit)

    async def delete_uploads(self, upload_ids: Collection[str]) -> int:
        """Forget these uploads (their files are gone); how many rows went."""
        if not upload_ids:
            return 0
        ids = sorted(upload_ids)
        return await self.db_pool.write_txn("delete_uploads", _delete_txn, ids)


def _delete_txn(conn: Connection, upload_ids: list[str]) -> int:
    result = conn.execute(delete(uploads).where(uploads.c.id.in_(upload_ids)))
    return int(result.rowcount or 0)
