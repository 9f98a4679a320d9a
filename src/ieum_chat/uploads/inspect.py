"""Is an upload what its declared type says, and what is it: the check of a stored file, the
copy of a photo without its EXIF (a phone's photo says where it was taken), and a thumbnail.

An inspection runs in steps, cheapest first:

1. the head of the file against the type's magic numbers (``media_types.sniff``), in a thread;
2. the CHECK, required: images decoded whole by Pillow, audio and video read by ffprobe, in a
   child process with a wall-clock deadline and its own memory, CPU-time and file-size
   limits. Whatever stops it (a refusal, a crash, the deadline, the memory limit) refuses
   the upload with :class:`MediaRejected`, whose detail says which;
3. for images and videos, the THUMBNAIL, optional: another child job; when it fails or runs
   out of time the inspection goes on without one (logged at WARNING).

Files (documents) get no child process; see :meth:`Inspector._check_file`. At most
``MediaLimits.concurrency`` jobs of one :class:`Inspector` run at once; the event loop only
waits on pipes.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ieum_chat.errors import UnsupportedMediaType
from ieum_chat.media_types import CONTENT_TYPES, SNIFF_BYTES, Kind, sniff
from ieum_chat.uploads._jobs import JobFailed, run_job

__all__ = ["Inspection", "Inspector", "MediaLimits", "MediaRejected", "MediaToolError"]

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
# CPU seconds a child may use past its wall-clock timeout: the deadline is the parent's to
# enforce; RLIMIT_CPU only catches a child the parent could not kill.
_CPU_GRACE = 5
# The largest file a job writes is a copy of the upload (a re-encoded JPEG can outgrow the
# original) or a thumbnail.
_FILE_FLOOR = 32 * 2**20
_LOGGED = 2000  # characters of a child's stderr in a log line
# The FILE types that are ZIP archives (Office Open XML, HWPX): their directory is checked.
_ZIP_EXTENSIONS = frozenset({"zip", "docx", "xlsx", "pptx", "hwpx"})


@dataclass(frozen=True, slots=True)
class MediaLimits:
    timeout: float = 20.0  # wall seconds per child job
    memory_bytes: int = 768 * 2**20  # RLIMIT_AS of the child (ffmpeg/ffprobe inherit it)
    max_pixels: int = 89_478_485  # Pillow's MAX_IMAGE_PIXELS; more is a decompression bomb
    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"
    concurrency: int = 2  # jobs at once per Inspector
    thumbnail_px: int = 320  # long side of thumbnails, at most


@dataclass(frozen=True, slots=True)
class Inspection:
    content_type: str  # the table type (media_types.CONTENT_TYPES key)
    kind: Kind
    file: Path  # the upload itself, or a rewritten copy in workdir (EXIF removed)
    size: int  # bytes of `file`
    duration_ms: int | None  # AUDIO, VIDEO
    width: int | None  # IMAGE, VIDEO (as displayed: after EXIF orientation / rotation)
    height: int | None
    thumbnail: Path | None  # WebP in workdir, long side <= thumbnail_px; IMAGE and VIDEO


class MediaRejected(UnsupportedMediaType):
    """The upload is not what its type says, or could not be checked within the limits; the
    detail says which, in English."""


class MediaToolError(RuntimeError):
    """ffprobe (or ffmpeg) could not be started: the server's installation is at fault, not
    the upload, so this is no :class:`MediaRejected`."""


def _tail(stderr: str) -> str:
    """What a log line gets of a child's stderr: its end, where Python and ffmpeg say why."""
    text = stderr.strip()
    return text if len(text) <= _LOGGED else "[...]" + text[-_LOGGED:]


def _head(path: Path) -> tuple[bytes, int]:
    with path.open("rb") as fh:
        return fh.read(SNIFF_BYTES), path.stat().st_size


def _looks_like(content_type: str, head: bytes) -> str:
    others = (t for t in CONTENT_TYPES if t != content_type and sniff(t, head))
    other = next(others, None)
    return f": its first bytes are those of {other}" if other else ""


def _utf8_text(path: Path) -> str | None:
    """Why the file is not UTF-8 text without NUL, or None when it is."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            if (nul := chunk.find(b"\x00")) >= 0:
                return f"the text has a NUL byte at offset {offset + nul}"
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return f"the text is not UTF-8 (at offset {offset + exc.start})"
            offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "the text is not UTF-8 (it ends inside a character)"
    return None


class Inspector:
    """Inspects uploads; one per server, shared by every request (it owns the bound on jobs
    running at once)."""

    def __init__(self, limits: MediaLimits) -> None:
        if limits.concurrency < 1 or limits.timeout <= 0 or limits.thumbnail_px < 1:
            raise ValueError(f"unusable media limits: {limits}")
        self.limits = limits
        self._slots = asyncio.Semaphore(limits.concurrency)

    async def inspect(self, source: Path, content_type: str, workdir: Path) -> Inspection:
        """Check ``source``, declared as ``content_type`` (a key of ``media_types.CONTENT_TYPES``);
        files it writes (a copy without EXIF, the thumbnail) go to ``workdir``, named after
        the source. Raises :class:`MediaRejected` with the reason when the file is refused."""
        media = CONTENT_TYPES.get(content_type)
        if media is None:
            raise MediaRejected(f"{content_type} is not a type we accept")
        head, size = await asyncio.to_thread(_head, source)
        if size == 0:
            raise MediaRejected("the file is empty")
        if not sniff(content_type, head):
            raise MediaRejected(f"the file is not {content_type}{_looks_like(content_type, head)}")
        base = _Job(source, content_type, media.kind, workdir, size)
        if media.kind is Kind.FILE:
            await self._check_file(source, content_type)
            return base.inspection(source, size)
        await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
        if media.kind is Kind.IMAGE:
            return await self._image(base)
        return await self._audio_video(base)

    async def _check_file(self, source: Path, content_type: str) -> None:
        """Documents are never decoded: ``text/plain`` must be UTF-8 without NUL throughout,
        and the ZIP-based types (``.zip``, ``.docx``, ``.xlsx``, ``.pptx``, ``.hwpx``) must end
        with a ZIP directory. PDF and the OLE formats (``.doc``, ``.xls``, ``.ppt``, ``.hwp``)
        are known by their magic bytes only."""
        why = None
        async with self._slots:
            if content_type == "text/plain":
                why = await asyncio.to_thread(_utf8_text, source)
            elif CONTENT_TYPES[content_type].extension in _ZIP_EXTENSIONS:
                is_zip = await asyncio.to_thread(zipfile.is_zipfile, source)
                why = None if is_zip else f"the file is not {content_type}: no ZIP directory"
        if why:
            raise MediaRejected(why)

    # -- jobs ------------------------------------------------------------------------------

    async def _run(
        self, base: _Job, job: str, what: str, request: dict[str, Any]
    ) -> dict[str, Any]:
        limits = self.limits
        request = {
            **request,
            "job": job,
            "what": what,
            "limits": {
                "memory_bytes": limits.memory_bytes,
                "cpu_seconds": math.ceil(limits.timeout) + _CPU_GRACE,
                "file_bytes": max(_FILE_FLOOR, 2 * base.size),
            },
        }
        async with self._slots:
            return await run_job(request, seconds=limits.timeout, cwd=base.workdir)

    async def _check(self, base: _Job, request: dict[str, Any], out: Path | None) -> dict[str, Any]:
        what = f"{base.noun} check"
        try:
            answer = await self._run(base, base.check_job, what, request)
        except JobFailed as exc:
            log.warning("%s of %s %s: %s", what, base.source, exc.reason, _tail(exc.stderr))
            answer = {"ok": False, "reason": f"the {what} {exc.reason}"}
        if answer.get("tool"):
            log.error("%s of %s: %s", what, base.source, answer.get("reason"))
            raise MediaToolError(str(answer.get("reason")))
        if not answer.get("ok"):
            if out is not None:
                await asyncio.to_thread(out.unlink, missing_ok=True)
            raise MediaRejected(str(answer.get("reason") or f"the {what} failed"))
        return answer

    async def _thumbnail(self, base: _Job, request: dict[str, Any]) -> Path | None:
        out = base.workdir / f"{base.source.stem}.thumb.webp"
        request = {**request, "out": str(out), "thumbnail_px": self.limits.thumbnail_px}
        try:
            answer = await self._run(base, base.thumbnail_job, "thumbnail", request)
        except JobFailed as exc:
            answer = {"ok": False, "reason": f"the job {exc.reason}", "stderr": _tail(exc.stderr)}
        if answer.get("ok"):
            return out
        await asyncio.to_thread(out.unlink, missing_ok=True)
        log.warning(
            "no thumbnail for %s (%s): %s %s",
            base.source,
            base.content_type,
            answer.get("reason"),
            str(answer.get("stderr", "")).strip(),
        )
        return None

    async def _image(self, base: _Job) -> Inspection:
        clean = base.workdir / f"{base.source.stem}.clean.{base.extension}"
        request = {
            "source": str(base.source),
            "content_type": base.content_type,
            "out": str(clean),
            "max_pixels": self.limits.max_pixels,
        }
        answer = await self._check(base, request, clean)
        kept = clean if answer["rewritten"] else base.source
        thumb = await self._thumbnail(base, {**request, "source": str(kept)})
        size = (await asyncio.to_thread(kept.stat)).st_size
        return base.inspection(
            kept, size, width=answer["width"], height=answer["height"], thumbnail=thumb
        )

    async def _audio_video(self, base: _Job) -> Inspection:
        request = {
            "source": str(base.source),
            "content_type": base.content_type,
            "kind": base.kind.value,
            "ffprobe": self.limits.ffprobe,
            "ffmpeg": self.limits.ffmpeg,
        }
        answer = await self._check(base, request, None)
        duration_ms: int = answer["duration_ms"]
        thumb = None
        if base.kind is Kind.VIDEO:
            at = min(1.0, duration_ms / 2000)
            thumb = await self._thumbnail(
                base, {**request, "at": at, "video_stream": answer["video_stream"]}
            )
        size = (await asyncio.to_thread(base.source.stat)).st_size
        return base.inspection(
            base.source,
            size,
            duration_ms=duration_ms,
            width=answer["width"],
            height=answer["height"],
            thumbnail=thumb,
        )


@dataclass(frozen=True, slots=True)
class _Job:
    source: Path
    content_type: str
    kind: Kind
    workdir: Path
    size: int  # of the upload

    @property
    def noun(self) -> str:
        return self.kind.value.lower()

    @property
    def extension(self) -> str:
        return CONTENT_TYPES[self.content_type].extension

    @property
    def check_job(self) -> str:
        return "image-check" if self.kind is Kind.IMAGE else "av-check"

    @property
    def thumbnail_job(self) -> str:
        return "image-thumbnail" if self.kind is Kind.IMAGE else "video-thumbnail"

    def inspection(self, file: Path, size: int, **figures: Any) -> Inspection:
        return Inspection(
            content_type=self.content_type,
            kind=self.kind,
            file=file,
            size=size,
            duration_ms=figures.get("duration_ms"),
            width=figures.get("width"),
            height=figures.get("height"),
            thumbnail=figures.get("thumbnail"),
        )
