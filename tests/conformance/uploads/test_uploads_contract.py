"""What every upload backend promises (run against local and S3)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ieum_chat.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from ieum_chat.media_types import Kind
from ieum_chat.uploads import CONTENT_TYPES, UploadBackend, parse_key

NOW = 1_704_967_800.0  # 2024-01-11T10:10:00Z
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.mark.parametrize("content_type", list(CONTENT_TYPES))
def test_a_ticket_names_a_fresh_key_of_the_couple(
    uploads: UploadBackend, content_type: str
) -> None:
    couple = uuid.uuid4()
    ticket = uploads.presign(couple, content_type, 1000, now=NOW)
    key = uploads.key_of(ticket.image_url)
    assert key is not None
    assert parse_key(key) == couple
    assert key.endswith("." + CONTENT_TYPES[content_type])
    assert ticket.image_url == uploads.image_url(key)
    assert ticket.expires_at == NOW + uploads.ttl
    assert ticket.method in {"PUT", "POST"}
    assert ticket.upload_url.startswith(("https://", "http://"))
    other = uploads.presign(couple, content_type, 1000, now=NOW)
    assert uploads.key_of(other.image_url) != key


def test_content_type_is_normalised(uploads: UploadBackend) -> None:
    ticket = uploads.presign(uuid.uuid4(), " Image/PNG ", 10, now=NOW)
    assert ticket.image_url.endswith(".png")
    # parameters (a recorder's codecs) and other names of a type are the type
    assert uploads.presign(uuid.uuid4(), "audio/webm;codecs=opus", 10, now=NOW).image_url.endswith(
        ".weba"
    )
    assert uploads.presign(uuid.uuid4(), "audio/x-m4a", 10, now=NOW).image_url.endswith(".m4a")


@pytest.mark.parametrize(
    "content_type",
    ["image/svg+xml", "text/html", "application/x-msdownload", "", "image/heic", "video/x-flv"],
)
def test_other_types_are_refused(uploads: UploadBackend, content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType):
        uploads.presign(uuid.uuid4(), content_type, 10, now=NOW)


def test_sizes_outside_one_byte_to_the_limit_are_refused(uploads: UploadBackend) -> None:
    limit = uploads.max_bytes[Kind.IMAGE]
    uploads.presign(uuid.uuid4(), "image/png", limit, now=NOW)
    uploads.presign(uuid.uuid4(), "image/png", 1, now=NOW)
    with pytest.raises(PayloadTooLarge):
        uploads.presign(uuid.uuid4(), "image/png", limit + 1, now=NOW)
    with pytest.raises(PayloadTooLarge):
        uploads.presign(uuid.uuid4(), "image/png", 10**30, now=NOW)
    for size in (0, -1):
        with pytest.raises(BadRequest):
            uploads.presign(uuid.uuid4(), "image/png", size, now=NOW)


def test_only_our_urls_name_keys_of_the_couple(backend: Any) -> None:
    uploads = backend.uploads
    couple = uuid.uuid4()
    ticket = uploads.presign(couple, "image/png", len(PNG), now=NOW)
    backend.complete(ticket, PNG)
    key = uploads.key_of(ticket.image_url)
    assert key == ticket.key
    assert parse_key(key) == couple
    assert backend.exists(key)
    base = ticket.image_url[: -len(key)]
    for foreign in (
        "https://cdn.example/p.png",
        ticket.image_url + "x",
        ticket.image_url + "?x=1",
        ticket.image_url.upper(),
        base + f"{couple}/../{key}",
        base + f"{couple}/{'0' * 32}.svg",
        base + key.replace(".png", ".html"),
        ticket.image_url.replace("https://", "http://", 1),
        f"https://evil.example/{key}",
    ):
        assert uploads.key_of(foreign) is None, foreign
