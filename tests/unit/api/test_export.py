"""GET /chat/export in-process: the archive's entries, the caller's view of the history, and
the one-export-per-user bound, freed when the client goes away."""

from __future__ import annotations

import asyncio
import io
import os
import uuid
import zipfile
from collections.abc import MutableMapping
from typing import Any

import orjson
import pytest

from ieum_chat.api.export import EXPORT_PAGE, ExportSlots
from ieum_chat.errors import RateLimited
from ieum_chat.store import User
from tests.support.uploads import png_bytes
from tests.unit.api.conftest import Api, seed

PNG = png_bytes()


async def upload(api: Api, data: bytes) -> str:
    """Upload ``data`` through the presigned PUT; its file name."""
    ticket = (
        await api.client.post(
            api.room("/uploads"),
            json={"contentType": "image/png", "size": len(data)},
            headers=api.auth(),
        )
    ).json()
    put = await api.client.put(ticket["uploadUrl"], content=data, headers=ticket["headers"])
    assert put.status_code == 201, put.text
    name: str = ticket["imageUrl"].rsplit("/", 1)[1]
    return name


async def history(api: Api, user: User) -> list[dict[str, Any]]:
    """Every message ``user`` sees, oldest first, page by page through the history route."""
    messages: list[dict[str, Any]] = []
    after = 0
    while True:
        page = (
            await api.client.get(
                api.room("/messages"),
                params={"order": "asc", "limit": 100, "after": after},
                headers=api.auth(user),
            )
        ).json()
        messages.extend(page["messages"])
        if page["nextCursor"] is None:
            return messages
        after = page["nextCursor"]


async def export(api: Api, user: User) -> zipfile.ZipFile:
    response = await api.client.get("/chat/export", headers=api.auth(user))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="ieum-chat-{api.couple.id}.zip"'
    )
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None  # every entry's CRC matches its bytes
    return archive


def lines(archive: zipfile.ZipFile) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in archive.read("messages.jsonl").splitlines()]


async def test_the_archive_is_the_callers_history_and_the_couples_uploads(api: Api) -> None:
    await seed(api, 2 * EXPORT_PAGE + 50)  # three pages of the export
    contents = [PNG + os.urandom(size) for size in (10, 100_000)]
    files = {await upload(api, data): data for data in contents}
    mine = await history(api, api.a)
    hidden = mine[7]["id"]
    deleted = await api.client.delete(api.room(f"/messages/{hidden}"), headers=api.auth())
    assert deleted.status_code == 204

    archive = await export(api, api.a)
    names = archive.namelist()
    assert names[0] == "messages.jsonl"
    assert sorted(names[1:]) == sorted(f"media/{name}" for name in files)
    assert archive.getinfo("messages.jsonl").compress_type == zipfile.ZIP_DEFLATED
    for name, data in files.items():
        assert archive.getinfo(f"media/{name}").compress_type == zipfile.ZIP_STORED
        assert archive.read(f"media/{name}") == data
    exported = lines(archive)
    assert exported == await history(api, api.a)
    assert len(exported) == 2 * EXPORT_PAGE + 49
    assert hidden not in {m["id"] for m in exported}
    assert [m["seq"] for m in exported] == sorted(m["seq"] for m in exported)

    partners = lines(await export(api, api.b))  # hidden for a only
    assert partners == await history(api, api.b)
    assert hidden in {m["id"] for m in partners}


async def test_a_couple_without_messages_or_files(api: Api) -> None:
    archive = await export(api, api.a)
    assert archive.namelist() == ["messages.jsonl"]
    assert archive.read("messages.jsonl") == b""


async def test_no_couple_is_404_and_no_token_401(api: Api) -> None:
    alone = await api.client.get("/chat/export", headers=api.auth(api.loner))
    assert (alone.status_code, alone.json()["code"]) == (404, "NOT_FOUND")
    anonymous = await api.client.get("/chat/export")
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "AUTH_FAILED")


async def test_one_export_at_a_time_per_user_until_the_client_goes_away(api: Api) -> None:
    """A client that takes the first bytes and stops reading holds its export open: a second
    one of the same user is refused, the partner's is not; once that client goes away, the
    user may export again."""
    await seed(api, 10)
    first_bytes = asyncio.Event()
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            first_bytes.set()
            await asyncio.Event().wait()  # a client that stops reading

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/chat/export",
        "raw_path": b"/chat/export",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"chat.test"),
            (b"authorization", f"Bearer {api.token(api.a)}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("chat.test", 80),
    }
    stalled = asyncio.create_task(api.app(scope, receive, send))
    await asyncio.wait_for(first_bytes.wait(), 10)

    again = await api.client.get("/chat/export", headers=api.auth(api.a))
    assert (again.status_code, again.json()["code"]) == (429, "RATE_LIMITED")
    assert "running" in again.json()["detail"]
    partner = await api.client.get("/chat/export", headers=api.auth(api.b))
    assert partner.status_code == 200

    gone.set()
    await asyncio.wait_for(stalled, 10)
    after = await api.client.get("/chat/export", headers=api.auth(api.a))
    assert after.status_code == 200
    assert len(lines(zipfile.ZipFile(io.BytesIO(after.content)))) == 10


def test_slots_are_one_per_user_and_bounded_per_node() -> None:
    slots = ExportSlots(limit=2)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    slots.acquire(a)
    with pytest.raises(RateLimited, match="yours"):
        slots.acquire(a)
    slots.acquire(b)
    with pytest.raises(RateLimited, match="too many"):
        slots.acquire(c)
    slots.release(a)
    slots.acquire(c)
    assert len(slots) == 2
    slots.release(b)
    slots.release(c)
    slots.release(c)  # twice is harmless
    assert len(slots) == 0
