"""The content-type table and the first-bytes rules: every row's signature on a real head of
its format, every other format's head refused, the aliases clients send, and normalisation."""

from __future__ import annotations

import pytest

from ieum_chat.media_types import (
    ALIASES,
    CONTENT_TYPES,
    EXTENSIONS,
    SNIFF_BYTES,
    Kind,
    kind_of,
    normalize,
    sniff,
)

_ZIP = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00"
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00\x00\x00"
_EBML = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01"

# The first bytes of a real file of each type (as the encoders named in the comments write them).
HEADS: dict[str, bytes] = {
    "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01",
    "image/png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "image/gif": b"GIF89a\x78\x00\x50\x00\xf7\x00",
    "image/webp": b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00",
    "audio/mp4": b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00",  # ffmpeg -f ipod
    "audio/aac": b"\xff\xf1\x50\x80\x02\x1f\xfc",  # ADTS, MPEG-4 AAC LC
    "audio/mpeg": b"ID3\x04\x00\x00\x00\x00\x00#TSSE",
    "audio/ogg": b"OggS\x00\x02\x00\x00\x00\x00",
    "audio/webm": _EBML,
    "audio/wav": b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00",
    "video/mp4": b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00",
    "video/quicktime": b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00",
    "video/webm": _EBML,
    "video/3gpp": b"\x00\x00\x00\x18ftyp3gp5\x00\x00\x02\x00",
    "application/pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
    "application/zip": _ZIP,
    "text/plain": "안녕하세요, hello\n".encode(),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": _ZIP,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": _ZIP,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": _ZIP,
    "application/msword": _OLE,
    "application/vnd.ms-excel": _OLE,
    "application/vnd.ms-powerpoint": _OLE,
    "application/x-hwp": _OLE,
    "application/hwp+zip": _ZIP,
}

_ISO = ("audio/mp4", "video/mp4", "video/3gpp")
# Types whose files open the same way: the container is told apart later, by decoding.
_SAME_SIGNATURE = (
    set(_ISO),  # ISO base media: an ftyp box
    {"audio/webm", "video/webm"},  # EBML
    {t for t, head in HEADS.items() if head == _ZIP},
    {t for t, head in HEADS.items() if head == _OLE},
)
# Heads of one type another type's rule also takes, on purpose: a QuickTime file of today
# opens with an ftyp box as MP4 does; ADTS, like MP3, may come after an ID3 tag; and the
# 12 sync bits of ADTS hold MPEG audio's 11.
_SHARED = {
    *(("video/quicktime", t) for t in _ISO),
    *((t, "video/quicktime") for t in _ISO),
    ("audio/aac", "audio/mpeg"),
    ("audio/mpeg", "audio/aac"),
}


def _also_passing(content_type: str) -> set[str]:
    group = next((g for g in _SAME_SIGNATURE if content_type in g), {content_type})
    return (group - {content_type}) | {other for c, other in _SHARED if c == content_type}


def test_every_row_has_a_head() -> None:
    assert set(HEADS) == set(CONTENT_TYPES)


@pytest.mark.parametrize("content_type", sorted(CONTENT_TYPES))
def test_a_head_of_the_type_passes(content_type: str) -> None:
    assert sniff(content_type, HEADS[content_type])


@pytest.mark.parametrize("content_type", sorted(CONTENT_TYPES))
def test_an_empty_file_passes_nothing(content_type: str) -> None:
    assert not sniff(content_type, b"")


@pytest.mark.parametrize("content_type", sorted(CONTENT_TYPES))
def test_heads_of_other_formats_are_refused(content_type: str) -> None:
    others = (t for t in HEADS if t != content_type)
    passed = {other for other in others if sniff(content_type, HEADS[other])}
    assert passed == _also_passing(content_type)


@pytest.mark.parametrize("content_type", sorted(t for t in CONTENT_TYPES if t != "text/plain"))
def test_a_web_page_is_refused(content_type: str) -> None:
    assert not sniff(content_type, b"<!doctype html><html><script>alert(1)</script>")


def test_rows_have_distinct_extensions_and_kinds() -> None:
    assert len(EXTENSIONS) == len(CONTENT_TYPES)
    assert {m.kind for m in CONTENT_TYPES.values()} == set(Kind)
    for content_type, media in CONTENT_TYPES.items():
        assert media.content_type == content_type
        assert EXTENSIONS[media.extension] is media


def test_old_quicktime_files_open_with_other_boxes() -> None:
    for box in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        head = b"\x00\x00\x00\x08" + box + b"\x00" * 8
        assert sniff("video/quicktime", head)
        assert not sniff("video/mp4", head)


def test_mpeg_audio_without_a_tag_opens_with_a_frame_sync() -> None:
    assert sniff("audio/mpeg", b"\xff\xfb\x90\x64\x00")  # MPEG-1 layer III
    assert sniff("audio/mpeg", b"\xff\xe3\x18\xc4\x00")  # MPEG-2.5
    assert not sniff("audio/mpeg", b"\xff\x1b\x90")


def test_adts_needs_layer_zero_after_its_sync() -> None:
    assert sniff("audio/aac", b"\xff\xf9\x50\x80")  # MPEG-2 ADTS
    assert sniff("audio/aac", b"ID3\x04\x00")  # a tag first, as in MP3
    assert not sniff("audio/aac", b"\xff\xfb\x90\x64")  # MPEG-1 layer III


def test_text_cut_inside_a_character_at_the_end_of_the_head_passes() -> None:
    body = ("가" * SNIFF_BYTES).encode()  # three bytes a character
    head = body[:SNIFF_BYTES]
    assert len(head) % 3 != 0
    assert sniff("text/plain", head)


def test_text_with_a_nul_or_a_bad_byte_inside_is_refused() -> None:
    assert not sniff("text/plain", b"hello\x00world")
    assert not sniff("text/plain", b"caf\xe9 au lait")  # Latin-1, not UTF-8
    assert not sniff("text/plain", b"\xe0\x80\x80 overlong")


def test_normalize_drops_parameters_and_case() -> None:
    assert normalize("audio/webm;codecs=opus") == "audio/webm"
    assert normalize(' Video/MP4 ; codecs="avc1.42E01E"') == "video/mp4"
    assert normalize("IMAGE/JPG") == "image/jpeg"
    assert normalize("text/html") == "text/html"  # not checked against the table


@pytest.mark.parametrize(("alias", "name"), sorted(ALIASES.items()))
def test_aliases_name_table_types(alias: str, name: str) -> None:
    assert name in CONTENT_TYPES
    assert alias not in CONTENT_TYPES
    assert normalize(alias) == name
    assert kind_of(alias.upper() + "; charset=x") is CONTENT_TYPES[name].kind


def test_kind_of() -> None:
    assert kind_of("audio/x-m4a") is Kind.AUDIO
    assert kind_of("video/quicktime") is Kind.VIDEO
    assert kind_of("image/webp") is Kind.IMAGE
    assert kind_of("application/x-hwp") is Kind.FILE
    assert kind_of("text/html") is None
    assert kind_of("") is None
