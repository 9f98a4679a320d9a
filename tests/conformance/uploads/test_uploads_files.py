"""A couple's stored files, on every backend against real storage (a folder; moto's S3
server): listing, reading in bounded chunks, deleting (idempotent)."""

from __future__ import annotations

import os
import secrets
import time
import uuid

import pytest
from tests.conformance.uploads.conftest import Backend

from ieum_chat.uploads import READ_CHUNK, UploadBackend, parse_key

NOW = 1_704_967_800.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png(size: int) -> bytes:
    """A PNG-looking file of ``size`` bytes, random past its magic number."""
    return PNG_MAGIC + os.urandom(size - len(PNG_MAGIC))


def upload(backend: Backend, couple: uuid.UUID, data: bytes) -> str:
    """Upload ``data`` as a client does (ticket, then the upload); the key it got."""
    ticket = backend.uploads.presign(couple, "image/png", len(data), now=time.time())
    backend.complete(ticket, data)
    key = backend.uploads.key_of(ticket.image_url)
    assert key is not None
    return key


def read_all(uploads: UploadBackend, key: str) -> tuple[int, list[bytes]]:
    stored = uploads.open_file(key)
    assert stored is not None, key
    with stored:
        assert stored.key == key
        return stored.size, list(stored)


def test_a_couples_files_are_listed_read_and_deleted(backend: Backend) -> None:
    uploads = backend.uploads
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    files = {upload(backend, mine, png(size)): size for size in (100, READ_CHUNK, 200_000)}
    other = upload(backend, theirs, png(300))

    assert sorted(uploads.iter_keys(mine)) == sorted(files)
    assert list(uploads.iter_keys(theirs)) == [other]
    for key, size in files.items():
        assert parse_key(key) == mine
        stored_size, chunks = read_all(uploads, key)
        assert stored_size == size == sum(map(len, chunks))
        assert all(0 < len(chunk) <= READ_CHUNK for chunk in chunks)
    big = next(key for key, size in files.items() if size == 200_000)
    assert len(read_all(uploads, big)[1]) >= 200_000 // READ_CHUNK + 1  # several chunks

    assert uploads.delete_files(mine) == 3
    assert list(uploads.iter_keys(mine)) == []
    assert all(uploads.open_file(key) is None for key in files)
    assert uploads.delete_files(mine) == 0  # twice is fine
    assert list(uploads.iter_keys(theirs)) == [other]  # another couple's files stay
    assert read_all(uploads, other)[0] == 300


def test_read_gives_back_the_uploaded_bytes(backend: Backend) -> None:
    data = png(3 * READ_CHUNK + 17)
    key = upload(backend, uuid.uuid4(), data)
    stored = backend.uploads.open_file(key)
    assert stored is not None
    with stored:
        assert stored.size == len(data)
        assert stored.modified > NOW  # a real time stamp (the file was written just now)
        assert b"".join(stored) == data


def test_a_file_closed_half_read_can_be_read_again(backend: Backend) -> None:
    data = png(2 * READ_CHUNK)
    key = upload(backend, uuid.uuid4(), data)
    stored = backend.uploads.open_file(key)
    assert stored is not None
    with stored:
        first = next(iter(stored))
    assert data.startswith(first)
    assert b"".join(read_all(backend.uploads, key)[1]) == data


def test_a_couple_without_files(backend: Backend) -> None:
    uploads = backend.uploads
    couple = uuid.uuid4()
    assert list(uploads.iter_keys(couple)) == []
    assert uploads.delete_files(couple) == 0
    assert uploads.delete_files(couple) == 0
    assert uploads.open_file(f"{couple}/{secrets.token_hex(16)}.png") is None


def test_what_is_not_a_key_of_ours_is_neither_listed_nor_deleted(backend: Backend) -> None:
    uploads = backend.uploads
    couple = uuid.uuid4()
    ours = upload(backend, couple, png(64))
    name = secrets.token_hex(16)
    strays = [
        f"{couple}/notes.txt",
        f"{couple}/{name}.svg",
        f"{couple}/{name.upper()}.png",
        f"{couple}/sub/{name}.png",
        f"{str(couple).upper()}/{name}.png",
    ]
    for stray in strays:
        backend.plant(stray, b"not ours")
    assert list(uploads.iter_keys(couple)) == [ours]
    assert uploads.delete_files(couple) == 1
    assert not backend.exists(ours)
    assert all(backend.exists(stray) for stray in strays)
    assert uploads.delete_files(couple) == 0


@pytest.mark.parametrize("key", ["../x.png", "", f"{uuid.UUID(int=1)}/../../etc/passwd"])
def test_only_keys_of_ours_are_opened(uploads: UploadBackend, key: str) -> None:
    with pytest.raises(ValueError, match="not an upload key"):
        uploads.open_file(key)


def test_many_files_are_listed_and_deleted_whole(backend: Backend) -> None:
    couple = uuid.uuid4()
    keys = {f"{couple}/{secrets.token_hex(16)}.png" for _ in range(150)}
    for key in keys:
        backend.plant(key, PNG_MAGIC)
    assert set(backend.uploads.iter_keys(couple)) == keys
    assert backend.uploads.delete_files(couple) == len(keys)
    assert not any(backend.exists(key) for key in keys)
