"""Documents through the inspector: no child process, no thumbnail; text must be UTF-8
without NUL to its last byte, ZIP-based types must have a ZIP directory, the others are
taken on their magic bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from ieum_chat.media_types import SNIFF_BYTES, Kind
from ieum_chat.uploads.inspect import Inspector, MediaRejected
from tests.support import media

_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


async def _accepted(inspector: Inspector, source: Path, content_type: str, workdir: Path) -> None:
    size = source.stat().st_size  # noqa: ASYNC240 - a test's own file
    result = await inspector.inspect(source, content_type, workdir)
    assert (result.kind, result.content_type, result.file) == (Kind.FILE, content_type, source)
    assert result.size == size
    assert (result.duration_ms, result.width, result.height, result.thumbnail) == (None,) * 4


async def test_utf8_text_is_accepted(inspector: Inspector, tmp_path: Path, workdir: Path) -> None:
    source = media.text(tmp_path / "note.txt", "가나다 hello\n" * 10_000)

    await _accepted(inspector, source, "text/plain", workdir)


@pytest.mark.parametrize(
    ("tail", "detail"),
    [
        (b"\x00", "the text has a NUL byte at offset 8192"),
        (b"caf\xe9 au lait", "the text is not UTF-8 (at offset 8195)"),
        ("가".encode()[:2], "the text is not UTF-8 (it ends inside a character)"),
    ],
)
async def test_text_is_checked_past_its_first_bytes(
    inspector: Inspector, tmp_path: Path, workdir: Path, tail: bytes, detail: str
) -> None:
    source = tmp_path / "note.txt"
    source.write_bytes(b"a" * 2 * SNIFF_BYTES + tail)

    with pytest.raises(MediaRejected) as refused:
        await inspector.inspect(source, "text/plain", workdir)

    assert refused.value.detail == detail


@pytest.mark.parametrize("content_type", ["application/zip", _DOCX, "application/hwp+zip"])
async def test_zip_based_files_are_accepted(
    inspector: Inspector, tmp_path: Path, workdir: Path, content_type: str
) -> None:
    source = media.zip_archive(tmp_path / "doc.zip", {"[Content_Types].xml": b"<Types/>"})

    await _accepted(inspector, source, content_type, workdir)


async def test_a_zip_without_its_directory_is_refused(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    whole = media.zip_archive(tmp_path / "whole.zip", {"a.txt": b"x" * 10_000})
    source = tmp_path / "cut.docx"
    source.write_bytes(whole.read_bytes()[:-30])

    with pytest.raises(MediaRejected) as refused:
        await inspector.inspect(source, _DOCX, workdir)

    assert refused.value.detail == f"the file is not {_DOCX}: no ZIP directory"


@pytest.mark.parametrize(
    ("content_type", "head"),
    [
        ("application/pdf", b"%PDF-1.7\n"),
        ("application/msword", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"),
        ("application/x-hwp", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"),
    ],
)
async def test_other_documents_are_taken_on_their_magic_bytes(
    inspector: Inspector, tmp_path: Path, workdir: Path, content_type: str, head: bytes
) -> None:
    source = tmp_path / "doc.bin"
    source.write_bytes(head + bytes(range(256)) * 8)

    await _accepted(inspector, source, content_type, workdir)


async def test_a_web_page_declared_as_pdf_is_refused(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = media.html_as_png(tmp_path / "doc.pdf")

    with pytest.raises(MediaRejected, match=r"^the file is not application/pdf"):
        await inspector.inspect(source, "application/pdf", workdir)
