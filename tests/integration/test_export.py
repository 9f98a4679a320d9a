"""GET /chat/export against a real server: the archive is the caller's history and the
couple's uploads (SQLite and PostgreSQL), and a long history with 10 MB of media is streamed
without the server's memory growing with it (SQLite)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import secrets
import threading
import time
import urllib.parse
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from bench.history import seed_history

from ieum_chat.auth import issue_token
from ieum_chat.config import Settings
from ieum_chat.store import upgrade_schema
from tests.support.fixtures import SERVER_ENV
from tests.support.server import TEST_SECRET, Cli, ServerProcess
from tests.support.uploads import png_bytes

Couple = dict[str, str]
PNG = png_bytes()

BIG_MESSAGES = 100_000
BIG_FILES = 10
BIG_FILE_SIZE = 1024 * 1024  # 10 files: 10 MiB of media


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post(
    http: httpx.AsyncClient, path: str, token: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await http.post(path, json=body, headers=auth(token))
    assert response.status_code in {200, 201}, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def upload(http: httpx.AsyncClient, couple: Couple, data: bytes) -> str:
    """Upload ``data`` through the presigned local upload; its imageUrl."""
    ticket = await post(
        http,
        f"/chat/rooms/{couple['couple']}/uploads",
        couple["ta"],
        {"contentType": "image/png", "size": len(data)},
    )
    put = await http.put(ticket["uploadUrl"], content=data, headers=ticket["headers"])
    assert put.status_code == 201, put.text
    url: str = ticket["imageUrl"]
    return url


async def history(http: httpx.AsyncClient, couple: Couple, token: str) -> list[dict[str, Any]]:
    """Every message the token's user sees, oldest first, walked in pages of 3."""
    messages: list[dict[str, Any]] = []
    after = 0
    while True:
        response = await http.get(
            f"/chat/rooms/{couple['couple']}/messages",
            params={"order": "asc", "limit": 3, "after": after},
            headers=auth(token),
        )
        assert response.status_code == 200, response.text
        page = response.json()
        messages.extend(page["messages"])
        if page["nextCursor"] is None:
            return messages
        after = page["nextCursor"]


async def export(http: httpx.AsyncClient, couple: Couple, token: str) -> zipfile.ZipFile:
    response = await http.get("/chat/export", headers=auth(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="ieum-chat-{couple["couple"]}.zip"'
    )
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None  # every entry's CRC matches its bytes
    return archive


def lines(archive: zipfile.ZipFile) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in archive.read("messages.jsonl").splitlines()]


async def test_the_export_is_the_callers_history_and_the_couples_uploads(
    couple: Couple, http: httpx.AsyncClient
) -> None:
    ta, tb = couple["ta"], couple["tb"]
    room = f"/chat/rooms/{couple['couple']}"
    urls = {}
    for data in (PNG + os.urandom(1000), PNG + os.urandom(300_000)):
        urls[await upload(http, couple, data)] = data
    uploaded = {url.rsplit("/", 1)[1]: data for url, data in urls.items()}

    text = await post(http, f"{room}/messages", ta, {"type": "TEXT", "content": "안녕"})
    image = {"type": "IMAGE", "imageUrl": next(iter(urls)), "content": "사진 설명"}
    await post(http, f"{room}/messages", tb, image)
    sticker = await post(http, f"{room}/messages", ta, {"type": "STICKER", "content": "s-7"})
    await post(
        http, f"{room}/messages", tb, {"type": "TEXT", "content": "답장", "replyTo": text["id"]}
    )
    edited = await http.patch(
        f"{room}/messages/{text['id']}", json={"content": "안녕하세요"}, headers=auth(ta)
    )
    assert edited.status_code == 200, edited.text
    await post(http, f"{room}/messages/{sticker['id']}/unsend", ta)
    heart = urllib.parse.quote("❤️")
    await post(http, f"{room}/messages/{text['id']}/reactions/{heart}", tb)
    doomed = await post(http, f"{room}/messages", tb, {"type": "TEXT", "content": "지울 것"})
    deleted = await http.delete(f"{room}/messages/{doomed['id']}", headers=auth(ta))
    assert deleted.status_code == 204

    archive = await export(http, couple, ta)
    assert archive.namelist()[0] == "messages.jsonl"
    assert archive.getinfo("messages.jsonl").compress_type == zipfile.ZIP_DEFLATED
    exported = lines(archive)
    assert exported == await history(http, couple, ta)
    by_id = {m["id"]: m for m in exported}
    assert [m["type"] for m in exported] == ["TEXT", "IMAGE", "STICKER", "TEXT"]
    assert by_id[text["id"]]["content"] == "안녕하세요"
    assert by_id[text["id"]]["editedAt"] is not None
    assert by_id[text["id"]]["reactions"] == [{"emoji": "❤️", "userIds": [couple["b"]]}]
    assert by_id[sticker["id"]]["unsent"] is True
    assert exported[3]["replyTo"]["messageId"] == text["id"]
    assert doomed["id"] not in by_id  # deleted for the caller

    media = {name.removeprefix("media/"): name for name in archive.namelist()[1:]}
    assert set(media) == set(uploaded)
    for name, data in uploaded.items():
        assert archive.getinfo(media[name]).compress_type == zipfile.ZIP_STORED
        assert archive.read(media[name]) == data

    partners = lines(await export(http, couple, tb))
    assert partners == await history(http, couple, tb)
    assert doomed["id"] in {m["id"] for m in partners}


async def test_no_couple_is_404_and_no_token_401(cli: Cli, http: httpx.AsyncClient) -> None:
    loner = cli.run("user", "add", "--name", "loner").stdout.strip()
    token = cli.run("token", loner).stdout.strip()
    alone = await http.get("/chat/export", headers=auth(token))
    assert (alone.status_code, alone.json()["code"]) == (404, "NOT_FOUND")
    anonymous = await http.get("/chat/export")
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "AUTH_FAILED")


# -- a long history: memory stays flat --------------------------------------------------------


@dataclass
class BigCouple:
    server: ServerProcess
    token: str
    couple_id: str
    media: dict[str, str]
    """File name -> SHA-256 of its bytes."""
    warm_up_token: str
    """A member of another couple with as long a history, and no media."""


@pytest.fixture(scope="module")
def big_couple(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigCouple]:
    """A server on its own SQLite file: a couple with 100,000 messages (inserted in bulk) and
    10 files of 1 MiB of random bytes in its upload folder, and another couple of 100,000
    messages to warm up on."""
    root = tmp_path_factory.mktemp("big-export")
    url = f"sqlite:///{root / 'chat.db'}"
    upgrade_schema(url)
    big = asyncio.run(seed_history(url, BIG_MESSAGES, neighbour=1000))
    warm = asyncio.run(seed_history(url, BIG_MESSAGES, neighbour=1000))
    uploads = root / "uploads"
    folder = uploads / str(big.id)
    folder.mkdir(parents=True)
    media: dict[str, str] = {}
    for _ in range(BIG_FILES):
        data = PNG + os.urandom(BIG_FILE_SIZE - len(PNG))
        name = f"{secrets.token_hex(16)}.png"
        (folder / name).write_bytes(data)
        media[name] = hashlib.sha256(data).hexdigest()
    settings = Settings(jwt_secret=TEST_SECRET)
    env = {**SERVER_ENV, "IEUM_UPLOAD_DIR": str(uploads)}
    server = ServerProcess(Cli.for_database(url), root / "server.log", extra_env=env).start()
    try:
        yield BigCouple(
            server,
            issue_token(settings, big.user1_id, ttl=3600),
            str(big.id),
            media,
            issue_token(settings, warm.user1_id, ttl=3600),
        )
    finally:
        server.stop()


def rss_bytes(pid: int) -> int:
    """The process's resident set size (``VmRSS`` of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


class RssSampler:
    """Samples a process's RSS in a thread until stopped; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_bytes(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.peak = max(self.peak, rss_bytes(self.pid))


def test_a_long_history_streams_in_bounded_memory(big_couple: BigCouple, tmp_path: Path) -> None:
    server = big_couple.server
    assert server.proc is not None
    pid = server.proc.pid
    with httpx.Client(base_url=server.http_url, timeout=60) as client:
        # The first long read of a process fills what it keeps whatever the history's
        # length: SQLite's page caches (2 MiB a connection), the statement caches, the
        # allocator's arenas of its threads. Another couple's export pays for them first,
        # so that what is measured is what one export holds.
        warm_up = client.get("/chat/export", headers=auth(big_couple.warm_up_token))
        assert warm_up.status_code == 200

        path = tmp_path / "big.zip"
        baseline = rss_bytes(pid)
        started = time.perf_counter()
        with (
            RssSampler(pid) as sampler,
            client.stream("GET", "/chat/export", headers=auth(big_couple.token)) as response,
            path.open("wb") as out,
        ):
            assert response.status_code == 200
            for chunk in response.iter_raw():
                out.write(chunk)
        elapsed = time.perf_counter() - started

    size = path.stat().st_size
    growth = sampler.peak - baseline
    with zipfile.ZipFile(path) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
        seqs = []
        with archive.open("messages.jsonl") as jsonl:
            for line in jsonl:
                message = orjson.loads(line)
                assert message["coupleId"] == big_couple.couple_id
                seqs.append(message["seq"])
        assert seqs == list(range(1, BIG_MESSAGES + 1))
        media = {
            name.removeprefix("media/"): hashlib.sha256(archive.read(name)).hexdigest()
            for name in archive.namelist()
            if name.startswith("media/")
        }
        assert media == big_couple.media
    print(
        f"\nexport of {BIG_MESSAGES} messages and {BIG_FILES} MiB of media: archive "
        f"{size / 2**20:.1f} MiB ({unpacked / 2**20:.1f} MiB unpacked) in {elapsed:.1f} s; "
        f"server RSS {baseline / 2**20:.1f} MiB before, peak growth {growth / 2**20:.2f} MiB"
    )
    assert growth < size / 3, f"RSS grew {growth} bytes for an archive of {size} bytes"
