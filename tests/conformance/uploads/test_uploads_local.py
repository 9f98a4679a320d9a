"""The local backend: signed URLs, where files land, and which key signs them."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from ieum_chat.config import DEV_JWT_SECRET, Settings
from ieum_chat.errors import SignatureInvalid
from ieum_chat.uploads import LocalUploads, create_upload_backend
from ieum_chat.uploads.local import derive_key

NOW = 1_704_967_800.0
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def local(root: Path, secret: str = "a-secret-for-the-upload-tests-0123456789") -> LocalUploads:
    return LocalUploads(
        root,
        base_url="https://chat.example/",
        signing_key=derive_key(secret),
        max_bytes=1000,
        ttl=60,
    )


def signed(uploads: LocalUploads, couple: uuid.UUID | None = None) -> dict[str, str]:
    ticket = uploads.presign(couple or uuid.uuid4(), "image/png", 100, now=NOW)
    parts = urlsplit(ticket.upload_url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return {"key": parts.path.removeprefix("/uploads/"), **query}


def publish(uploads: LocalUploads, key: str, folder: Path) -> None:
    source = folder / "checked"
    source.write_bytes(PNG)
    assert uploads.publish(key, source, "image/png")


def verify(uploads: LocalUploads, values: dict[str, str], now: float = NOW) -> None:
    uploads.verify(
        values["key"],
        values["type"],
        int(values["size"]),
        int(values["expires"]),
        values["sig"],
        now=now,
    )


def test_the_url_carries_what_was_signed(tmp_path: Path) -> None:
    uploads = local(tmp_path)
    values = signed(uploads)
    assert (values["type"], values["size"], values["expires"]) == ("image/png", "100", "1704967860")
    verify(uploads, values)
    verify(uploads, values, now=NOW + 59)


@pytest.mark.parametrize(
    "change",
    [
        {"type": "image/jpeg"},
        {"size": "101"},
        {"expires": "1704967861"},
        {"key": f"{uuid.uuid4()}/{'a' * 32}.png"},
        {"sig": "x"},
        {"sig": ""},
    ],
)
def test_any_change_breaks_the_signature(tmp_path: Path, change: dict[str, str]) -> None:
    uploads = local(tmp_path)
    values = {**signed(uploads), **change}
    with pytest.raises(SignatureInvalid, match="signature"):
        verify(uploads, values)


def test_the_url_expires(tmp_path: Path) -> None:
    uploads = local(tmp_path)
    with pytest.raises(SignatureInvalid, match="expired"):
        verify(uploads, signed(uploads), now=NOW + 60)


def test_another_servers_key_does_not_verify(tmp_path: Path) -> None:
    values = signed(local(tmp_path, "one-secret-0123456789-0123456789"))
    with pytest.raises(SignatureInvalid):
        verify(local(tmp_path, "another-secret-0123456789-012345"), values)


@pytest.mark.parametrize(
    "key",
    # Fixed UUIDs: the test ids must be the same on every run (--lf, -k, reports).
    [
        "../x.png",
        f"{uuid.UUID(int=1)}/../../etc/passwd",
        "/etc/passwd",
        f"{uuid.UUID(int=2)}/a.png",
        "",
    ],
)
def test_keys_we_never_hand_out_are_refused(tmp_path: Path, key: str) -> None:
    uploads = local(tmp_path)
    sig = uploads.signature(key, "image/png", 10, int(NOW) + 60)
    with pytest.raises(SignatureInvalid, match="not an upload URL"):
        uploads.verify(key, "image/png", 10, int(NOW) + 60, sig, now=NOW)
    assert uploads.path_for(key) is None


def test_files_land_under_the_directory_and_nowhere_else(tmp_path: Path) -> None:
    uploads = local(tmp_path / "up")
    couple = uuid.uuid4()
    key = signed(uploads, couple)["key"]
    assert not uploads.has_file(key)  # not uploaded yet
    source = tmp_path / "checked"
    source.write_bytes(PNG)
    assert uploads.publish(key, source, "image/png")
    assert not uploads.publish(key, source, "image/png")  # a published file never changes
    path = uploads.path_for(key)
    assert path is not None
    assert path.read_bytes() == PNG
    assert path.resolve().is_relative_to((tmp_path / "up").resolve())
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left
    assert uploads.has_file(key)
    with pytest.raises(ValueError, match="not an upload key"):
        uploads.publish("../escape.png", source, "image/png")


def test_signing_key_selection(tmp_path: Path) -> None:
    def backend(**values: str) -> LocalUploads:
        made = create_upload_backend(Settings(upload_dir=str(tmp_path), **values))  # type: ignore[arg-type]
        assert isinstance(made, LocalUploads)
        return made

    couple = uuid.uuid4()
    jwt_a = signed(backend(jwt_secret="jwt-secret-0123456789-0123456789"), couple)
    jwt_b = backend(jwt_secret="jwt-secret-0123456789-0123456789")
    verify(jwt_b, jwt_a)  # nodes sharing the JWT secret accept each other's URLs
    own = signed(backend(jwt_secret="jwt-x" * 8, upload_secret="upload-secret-0123456789"), couple)
    verify(backend(jwt_secret="jwt-y" * 8, upload_secret="upload-secret-0123456789"), own)
    with pytest.raises(SignatureInvalid):
        verify(jwt_b, own)
    dev = signed(backend(jwt_secret=DEV_JWT_SECRET), couple)
    with pytest.raises(SignatureInvalid):  # the public dev secret never signs uploads
        verify(backend(jwt_secret=DEV_JWT_SECRET), dev)


def test_public_url_is_the_base_of_image_urls(tmp_path: Path) -> None:
    made = create_upload_backend(
        Settings(upload_dir=str(tmp_path), public_url="https://chat.ieum.example/")
    )
    ticket = made.presign(uuid.uuid4(), "image/gif", 10, now=NOW)
    assert ticket.image_url.startswith("https://chat.ieum.example/uploads/")
    default = create_upload_backend(Settings(upload_dir=str(tmp_path), host="10.1.2.3", port=81))
    assert default.presign(uuid.uuid4(), "image/gif", 10, now=NOW).image_url.startswith(
        "http://10.1.2.3:81/uploads/"
    )


def test_deleting_a_couples_files_removes_crash_leftovers_and_the_folder(tmp_path: Path) -> None:
    uploads = local(tmp_path / "up")
    couple = uuid.uuid4()
    key = signed(uploads, couple)["key"]
    publish(uploads, key, tmp_path)
    folder = tmp_path / "up" / str(couple)
    (folder / ".upload-abc123.part").write_bytes(PNG[:10])  # an upload cut by a crash
    assert list(uploads.iter_keys(couple)) == [key]
    assert uploads.delete_files(couple) == 1  # the leftover is no file of the couple's
    assert not folder.exists()
    assert uploads.delete_files(couple) == 0


def test_a_folder_holding_something_else_stays(tmp_path: Path) -> None:
    uploads = local(tmp_path / "up")
    couple = uuid.uuid4()
    key = signed(uploads, couple)["key"]
    publish(uploads, key, tmp_path)
    folder = tmp_path / "up" / str(couple)
    (folder / "README").write_text("an operator's note")
    assert uploads.delete_files(couple) == 1
    assert sorted(p.name for p in folder.iterdir()) == ["README"]
