"""The kinds of media a couple uploads (IMAGE, AUDIO, VIDEO, FILE), the content types each
accepts with the file extension of their keys, and what each type's first bytes look like.

No I/O here: the tables and :func:`sniff`, which the upload routes run on the head of a body
before the slower, out-of-process checks (``uploads.inspect``) decode the whole of it. The
settings read them too (the limits per kind, the accepted types), so they sit beside them,
outside every layer.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "ALIASES",
    "CONTENT_TYPES",
    "EXTENSIONS",
    "SNIFF_BYTES",
    "Kind",
    "MediaType",
    "file_name_problem",
    "kind_of",
    "normalize",
    "sniff",
]

MAX_FILE_NAME = 255  # what file systems take


class Kind(enum.StrEnum):
    """What a file is to the chat: the message type that carries it."""

    IMAGE = "IMAGE"
    AUDIO = "AUDIO"
    VIDEO = "VIDEO"
    FILE = "FILE"


@dataclass(frozen=True, slots=True)
class MediaType:
    content_type: str
    kind: Kind
    extension: str


_OLE = "ole"  # Microsoft's compound file (the old Office formats, HWP)
_ZIP = "zip"

# Content type -> (kind, extension of the key, the signature its first bytes must carry).
_TABLE: tuple[tuple[str, Kind, str, str], ...] = (
    ("image/jpeg", Kind.IMAGE, "jpg", "jpeg"),
    ("image/png", Kind.IMAGE, "png", "png"),
    ("image/gif", Kind.IMAGE, "gif", "gif"),
    ("image/webp", Kind.IMAGE, "webp", "webp"),
    ("audio/mp4", Kind.AUDIO, "m4a", "isobmff"),
    ("audio/aac", Kind.AUDIO, "aac", "adts"),
    ("audio/mpeg", Kind.AUDIO, "mp3", "mp3"),
    ("audio/ogg", Kind.AUDIO, "ogg", "ogg"),
    ("audio/webm", Kind.AUDIO, "weba", "ebml"),
    ("audio/wav", Kind.AUDIO, "wav", "wav"),
    ("video/mp4", Kind.VIDEO, "mp4", "isobmff"),
    ("video/quicktime", Kind.VIDEO, "mov", "quicktime"),
    ("video/webm", Kind.VIDEO, "webm", "ebml"),
    ("video/3gpp", Kind.VIDEO, "3gp", "isobmff"),
    ("application/pdf", Kind.FILE, "pdf", "pdf"),
    ("application/zip", Kind.FILE, "zip", _ZIP),
    ("text/plain", Kind.FILE, "txt", "text"),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Kind.FILE,
        "docx",
        _ZIP,
    ),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", Kind.FILE, "xlsx", _ZIP),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        Kind.FILE,
        "pptx",
        _ZIP,
    ),
    ("application/msword", Kind.FILE, "doc", _OLE),
    ("application/vnd.ms-excel", Kind.FILE, "xls", _OLE),
    ("application/vnd.ms-powerpoint", Kind.FILE, "ppt", _OLE),
    ("application/x-hwp", Kind.FILE, "hwp", _OLE),
    ("application/hwp+zip", Kind.FILE, "hwpx", _ZIP),
)

CONTENT_TYPES: dict[str, MediaType] = {
    ctype: MediaType(ctype, kind, ext) for ctype, kind, ext, _ in _TABLE
}
EXTENSIONS: dict[str, MediaType] = {m.extension: m for m in CONTENT_TYPES.values()}
_SIGNATURES: dict[str, str] = {ctype: signature for ctype, _, _, signature in _TABLE}

# Other names clients send for the same types (Android's and browsers' spellings).
ALIASES: dict[str, str] = {
    "image/jpg": "image/jpeg",
    "audio/x-m4a": "audio/mp4",
    "audio/m4a": "audio/mp4",
    "audio/aacp": "audio/aac",
    "audio/mp3": "audio/mpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "application/x-zip-compressed": "application/zip",
    "application/haansofthwp": "application/x-hwp",
    "application/vnd.hancom.hwp": "application/x-hwp",
    "application/vnd.hancom.hwpx": "application/hwp+zip",
}

# How much of a file's head :func:`sniff` needs.
SNIFF_BYTES = 4096

# ISO base media file format (MP4, M4A, 3GP, QuickTime): boxes of (size, type); a file opens
# with ftyp, and QuickTime files written before ftyp existed with one of these.
_QUICKTIME_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def normalize(content_type: str) -> str:
    """The table's name for a declared type: parameters dropped (``audio/webm;codecs=opus``
    is ``audio/webm``), lower case, aliases resolved. Not checked against the table."""
    base = content_type.partition(";")[0].strip().lower()
    return ALIASES.get(base, base)


def kind_of(content_type: str) -> Kind | None:
    media = CONTENT_TYPES.get(normalize(content_type))
    return media.kind if media else None


def _utf8_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a character cut by the end of the head is no reason to refuse
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"
    return True


def _adts(head: bytes) -> bool:  # an ID3 tag may come first, as in MP3
    sync = len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0
    return head.startswith(b"ID3") or sync


def _mp3(head: bytes) -> bool:
    sync = len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0
    return head.startswith(b"ID3") or sync


_RULES: dict[str, Callable[[bytes], bool]] = {
    "jpeg": lambda head: head.startswith(b"\xff\xd8\xff"),
    "png": lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"),
    "gif": lambda head: head.startswith((b"GIF87a", b"GIF89a")),
    "webp": lambda head: head[:4] == b"RIFF" and head[8:12] == b"WEBP",
    "wav": lambda head: head[:4] == b"RIFF" and head[8:12] == b"WAVE",
    "isobmff": lambda head: head[4:8] == b"ftyp",
    "quicktime": lambda head: head[4:8] in _QUICKTIME_BOXES,
    "ebml": lambda head: head.startswith(b"\x1a\x45\xdf\xa3"),
    "ogg": lambda head: head.startswith(b"OggS"),
    "adts": _adts,
    "mp3": _mp3,
    "pdf": lambda head: head.startswith(b"%PDF-"),
    _ZIP: lambda head: head.startswith((b"PK\x03\x04", b"PK\x05\x06")),
    _OLE: lambda head: head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"),
    "text": _utf8_text,
}


def sniff(content_type: str, head: bytes) -> bool:
    """Whether ``head`` (the first :data:`SNIFF_BYTES` bytes of a file, or all of a shorter
    one) starts the way files of ``content_type`` (a table type) do. The signatures are the
    formats' magic numbers; passing here only means the bytes are worth decoding."""
    return bool(head) and _RULES[_SIGNATURES[content_type]](head)


def file_name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a shared file's name (shown, and offered as the name
    of the download), or ``None``. Any script and punctuation is fine; path separators,
    control characters (NUL included), ``.`` and ``..`` and blank names are not: a name
    must never be taken for a path."""
    if not name.strip():
        return "'fileName' must not be blank"
    if len(name) > MAX_FILE_NAME:
        return f"'fileName' has at most {MAX_FILE_NAME} characters"
    if any(c in "/\\" for c in name):
        return "'fileName' must not contain '/' or '\\'"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name):
        return "'fileName' must not contain control characters (NUL included)"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        return "'fileName' must be valid Unicode text"
    if name.strip() in (".", ".."):
        return "'fileName' must not be '.' or '..'"
    return None
