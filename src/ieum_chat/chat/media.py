"""Media: tickets for uploads under the couple's daily quota, the check that turns an
uploaded file into a published one, what a media message may name, and the cleanup.

The life of an upload (``store.uploads``): a ticket is asked for (a row, ``issued``, its
declared size counted in the day's quota); the client uploads the bytes (through the
server's PUT, or to the bucket's staging key); the check (``uploads.inspect``, out of
process) decides whether they are what the content type says, drops a photo's EXIF and
makes the thumbnail; what passes is published at the URL the ticket named and the row is
``ready``; a message names it; the cleanup keeps it for good, or deletes it (and its row)
when no message names it ``IEUM_UPLOAD_TTL`` after its URL expired, or once its message
is unsent.

A message may name an upload until ``SEND_MARGIN`` (or a quarter of ``IEUM_UPLOAD_TTL``,
if shorter) before that deadline, so that a send and the cleanup never race for one file.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ieum_chat.chat.jobs import PeriodicJob, node_name
from ieum_chat.chat.requests import MessageType, SendRequest, image_host_allowed
from ieum_chat.config import Settings
from ieum_chat.errors import (
    BadRequest,
    Conflict,
    NotFound,
    QuotaExceeded,
    SendFailed,
    UnsupportedMediaType,
)
from ieum_chat.media_types import CONTENT_TYPES, Kind, file_name_problem, normalize
from ieum_chat.observability import metrics
from ieum_chat.store import Database
from ieum_chat.store.records import Media
from ieum_chat.store.schema import utcnow
from ieum_chat.store.uploads import Upload, UploadState
from ieum_chat.uploads import LocalUploads, UploadBackend, UploadTicket, thumbnail_key
from ieum_chat.uploads.inspect import Inspection, Inspector, MediaLimits

__all__ = ["CLEANUP_JOB", "USED", "MediaService", "Ticket"]

log = logging.getLogger(__name__)

CLEANUP_JOB = "upload-cleanup"
USED = "this upload URL has been used; ask for a new one"
SEND_MARGIN = timedelta(seconds=60)  # at most; a quarter of IEUM_UPLOAD_TTL when shorter
SWEEP_BATCH = 500
# A claimed duration this close to the file's is the same (recorders round differently).
DURATION_SLACK_MS = 1000
DURATION_SLACK = 0.1


@dataclass(frozen=True, slots=True)
class Ticket:
    upload: Upload
    ticket: UploadTicket


def _upload_id(key: str) -> str:
    return key.rsplit("/", 1)[1].split(".", 1)[0]


class MediaService:
    def __init__(self, db: Database, backend: UploadBackend | None, settings: Settings) -> None:
        self._db = db
        self.backend = backend
        self._settings = settings
        self._grace = timedelta(seconds=settings.upload_ttl)
        self._margin = min(SEND_MARGIN, self._grace / 4)
        self.inspector = Inspector(
            MediaLimits(
                timeout=settings.media_timeout,
                memory_bytes=settings.media_memory_bytes,
                max_pixels=settings.media_max_pixels,
                ffmpeg=settings.ffmpeg,
                ffprobe=settings.ffprobe,
            )
        )
        self._job = PeriodicJob(
            db,
            CLEANUP_JOB,
            self.cleanup,
            every=min(settings.upload_ttl, 300),
            check=60,
            node=node_name(),
        )

    def _backend(self) -> UploadBackend:
        if self.backend is None:
            raise NotFound("uploads are not configured on this server")
        return self.backend

    async def start(self) -> None:
        if self.backend is not None:
            self._job.start()

    async def close(self) -> None:
        await self._job.close()

    # -- tickets ---------------------------------------------------------------------------

    def _day_start(self, now: float) -> tuple[datetime, int]:
        """The start of the quota's day (midnight in ``IEUM_TIMEZONE``) as stored (naive
        UTC), and the seconds left until the next one."""
        local = datetime.fromtimestamp(now, self._settings.zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        tomorrow = (midnight + timedelta(days=1, hours=2)).replace(hour=0)
        start = midnight.astimezone(UTC).replace(tzinfo=None)
        return start, max(1, int(tomorrow.timestamp() - now))

    async def ticket(
        self,
        uploader_id: uuid.UUID,
        couple_id: uuid.UUID,
        content_type: str,
        size: int,
        file_name: str | None = None,
    ) -> Ticket:
        """A presigned upload for a member, counted against the couple's day:
        :class:`UnsupportedMediaType`, :class:`PayloadTooLarge` (the kind's limit),
        :class:`BadRequest` (a bad size or file name), :class:`QuotaExceeded`."""
        backend = self._backend()
        if file_name is not None and (problem := file_name_problem(file_name)) is not None:
            raise BadRequest(problem)
        now = time.time()
        # Presigning is local computation, but S3 credentials may be fetched on first use.
        ticket = await asyncio.to_thread(backend.presign, couple_id, content_type, size, now=now)
        ctype = normalize(content_type)
        created = utcnow()
        upload = Upload(
            id=_upload_id(ticket.key),
            couple_id=couple_id,
            uploader_id=uploader_id,
            key=ticket.key,
            url=ticket.image_url,
            kind=CONTENT_TYPES[ctype].kind.value,
            content_type=ctype,
            size=size,
            file_name=file_name,
            state=UploadState.ISSUED,
            created_at=created,
            expires_at=datetime.fromtimestamp(ticket.expires_at, UTC).replace(tzinfo=None),
        )
        since, retry_after = self._day_start(now)
        daily = self._settings.upload_daily_bytes
        used = await self._db.issue_upload(upload, since=since, daily_bytes=daily)
        if used is not None:
            metrics.UPLOADS.labels(upload.kind.lower(), "quota").inc()
            raise QuotaExceeded(
                f"the couple has uploaded {used} of its {daily} bytes today; "
                f"{size} more would pass the limit",
                retry_after=retry_after,
            )
        return Ticket(upload, ticket)

    # -- checking and publishing -----------------------------------------------------------

    async def upload_of(self, couple_id: uuid.UUID | None, upload_id: str) -> Upload:
        """The upload ``upload_id`` (of ``couple_id``, when given), or :class:`NotFound`."""
        upload = await self._db.get_upload(upload_id) if len(upload_id) == 32 else None
        if upload is None or (couple_id is not None and upload.couple_id != couple_id):
            raise NotFound("no such upload")
        return upload

    def workdir(self) -> tempfile.TemporaryDirectory[str]:
        """A folder for one upload's check: its body, the rewritten copy, the thumbnail.
        The local backend's is inside its folder, so that publishing is a link."""
        backend = self._backend()
        parent = backend.workdir() if isinstance(backend, LocalUploads) else None
        return tempfile.TemporaryDirectory(prefix="ieum-media-", dir=parent)

    async def complete(self, couple_id: uuid.UUID, upload_id: str) -> Upload:
        """Check and publish what the client uploaded for ``upload_id`` (to the bucket), or
        answer with the upload when that was done already (the local PUT does it).
        :class:`Conflict` when nothing was uploaded yet; :class:`UnsupportedMediaType` when
        the bytes are not what the type says."""
        upload = await self.upload_of(couple_id, upload_id)
        if upload.published:
            return upload
        if upload.state is not UploadState.ISSUED:
            raise NotFound("no such upload")
        backend = self._backend()
        with self.workdir() as folder:
            path = Path(folder) / "upload"
            fetched = await asyncio.to_thread(backend.fetch_upload, upload.key, path, upload.size)
            if not fetched:
                raise Conflict("nothing was uploaded for this ticket yet")
            try:
                return await self.publish(upload, path, Path(folder))
            except Conflict:  # a concurrent completion published the same staged file
                done = await self._db.get_upload(upload_id)
                if done is None or not done.published:
                    raise Conflict("this upload is being checked; ask again in a moment") from None
                return done

    async def publish(self, upload: Upload, source: Path, folder: Path) -> Upload:
        """Check ``source`` (the uploaded bytes, in ``folder``) and publish what passes."""
        backend = self._backend()
        started = time.perf_counter()
        kind = upload.kind.lower()
        try:
            checked = await self.inspector.inspect(source, upload.content_type, folder)
        except UnsupportedMediaType:
            metrics.UPLOADS.labels(kind, "refused").inc()
            raise
        thumb = None
        if checked.thumbnail is not None:
            thumb = thumbnail_key(upload.key)
            await asyncio.to_thread(backend.publish, thumb, checked.thumbnail, "image/webp")
        name = upload.file_name if upload.kind == Kind.FILE else None
        placed = await asyncio.to_thread(
            backend.publish, upload.key, checked.file, upload.content_type, file_name=name
        )
        if not placed:  # another request published it first: these bytes are not kept
            raise Conflict(USED)
        media = self._media(upload, checked, thumb)
        done = await self._db.finish_upload(
            upload.id, size=checked.size, media=media, thumbnail_key=thumb
        )
        if done is None:
            raise NotFound("no such upload")
        metrics.UPLOADS.labels(kind, "published").inc()
        metrics.MEDIA_CHECK_SECONDS.labels(kind).observe(time.perf_counter() - started)
        return done

    def _media(self, upload: Upload, checked: Inspection, thumb: str | None) -> Media:
        backend = self._backend()
        return Media(
            thumbnail_url=backend.image_url(thumb) if thumb is not None else None,
            duration_ms=checked.duration_ms,
            file_name=upload.file_name if upload.kind == Kind.FILE else None,
            size=checked.size,
            width=checked.width,
            height=checked.height,
        )

    # -- what a message may name -----------------------------------------------------------

    async def attach(
        self, couple_id: uuid.UUID, request: SendRequest
    ) -> tuple[str | None, Media | None]:
        """The file a media message carries and what is known of it, for its row, or
        :class:`SendFailed` saying what is wrong. An IMAGE may also name a file on a host
        the operator allows (``IEUM_IMAGE_HOSTS``), of which nothing is known."""
        url = request.file_url
        if url is None:
            return None, None
        field = "imageUrl" if request.type is MessageType.IMAGE else "mediaUrl"
        upload = None
        if self.backend is not None and self.backend.key_of(url) is not None:
            upload = await self._db.upload_by_url(url)
        if upload is None or upload.couple_id != couple_id:
            if request.type is MessageType.IMAGE and image_host_allowed(
                url, self._settings.image_hosts
            ):
                return url, None
            raise SendFailed(
                f"'{field}' must be a file uploaded through POST /chat/rooms/{{roomId}}/uploads"
                + (" (or on a host the server allows)" if field == "imageUrl" else ""),
                temp_id=request.temp_id,
            )
        self._check(upload, request, field)
        return url, upload.media

    def _check(self, upload: Upload, request: SendRequest, field: str) -> None:
        def refuse(detail: str) -> SendFailed:
            return SendFailed(detail, temp_id=request.temp_id)

        if not upload.published:
            raise refuse(
                f"'{field}' names an upload that was not completed (or was unsent): "
                "upload the file, then POST the ticket's completeUrl"
            )
        if upload.kind != request.type.value:
            raise refuse(
                f"'{field}' names an upload of kind {upload.kind}, not {request.type.value}"
            )
        if upload.state is UploadState.READY and utcnow() > (
            upload.expires_at + self._grace - self._margin
        ):
            raise refuse(f"'{field}' names an upload that expired; upload the file again")
        media = upload.media or Media()
        claims = request.claims
        if claims.duration_ms is not None and media.duration_ms is not None:
            slack = max(DURATION_SLACK_MS, media.duration_ms * DURATION_SLACK)
            if abs(claims.duration_ms - media.duration_ms) > slack:
                raise refuse(
                    f"'durationMs' {claims.duration_ms} is not the file's duration "
                    f"({media.duration_ms} ms)"
                )
        if claims.size is not None and claims.size != media.size:
            raise refuse(f"'size' {claims.size} is not the file's size ({media.size} bytes)")
        if claims.file_name is not None and claims.file_name != upload.file_name:
            raise refuse("'fileName' is not the name the file was uploaded with")
        if claims.thumbnail_url is not None and claims.thumbnail_url != media.thumbnail_url:
            raise refuse("'thumbnailUrl' is not this file's thumbnail")

    # -- cleanup ---------------------------------------------------------------------------

    async def cleanup(self, *, now: datetime | None = None) -> int:
        """Delete the uploads no message names ``IEUM_UPLOAD_TTL`` after their URL expired,
        and those of unsent messages: files first, then rows (a cleanup that stops half way
        is finished by the next). How many uploads went."""
        backend = self.backend
        if backend is None:
            return 0
        before = (now or utcnow()) - self._grace
        removed = 0
        while batch := await self._db.sweep_uploads(before, limit=SWEEP_BATCH):
            keys = [u.key for u in batch] + [u.thumbnail_key for u in batch if u.thumbnail_key]
            await asyncio.to_thread(backend.delete_keys, keys)
            removed += await self._db.delete_uploads([u.id for u in batch])
            for upload in batch:
                reason = "unsent" if upload.state is UploadState.DOOMED else "unnamed"
                metrics.UPLOADS.labels(upload.kind.lower(), reason).inc()
            if len(batch) < SWEEP_BATCH:
                break
        if removed:
            log.info("upload cleanup: deleted %d uploads", removed)
        return removed
