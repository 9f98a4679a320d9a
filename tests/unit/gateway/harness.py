"""The gateway in-process, for unit tests: the real :class:`StompConnection` over an in-memory
:class:`Transport`, on a real :class:`ChatService` over a SQLite file and the memory broker.

:class:`MemoryTransport` plays the socket: what the connection writes waits in its backlog
until the test lets the peer take it (:meth:`MemoryTransport.take`), or is taken at once
(``reading=True``, a peer that keeps up). :class:`Peer` speaks STOMP to the connection.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ieum_chat.auth import TokenVerifier, issue_token
from ieum_chat.broker import create_broker
from ieum_chat.chat.service import ChatService
from ieum_chat.config import Settings
from ieum_chat.gateway import Gateway, Hub, StompConnection
from ieum_chat.stomp import HEARTBEAT, Frame, FrameParser, serialize_frame
from ieum_chat.store import Couple, Database, User, upgrade_schema

__all__ = ["SECRET", "MemoryTransport", "Peer", "World", "template_database", "world"]

SECRET = "ieum-chat-gateway-test-secret-0123456789-abcdef"


class MemoryTransport:
    """A :class:`~ieum_chat.gateway.transports.Transport` that keeps what is written in memory.

    ``backlog()`` is what the peer has not taken yet; past ``limit`` bytes ``write`` says
    False, as the socket transports do."""

    def __init__(self, *, limit: int, reading: bool = True) -> None:
        self.limit = limit
        self.reading = reading
        self.written: list[bytes] = []  # every frame, in order
        self.unread: list[bytes] = []  # frames the peer has not taken
        self.unread_bytes = 0
        self.closed = asyncio.Event()
        self.wrote = asyncio.Event()  # set on every write
        self.paused = False
        self.discarded = 0

    def write(self, frame: bytes) -> bool:
        if self.closed.is_set():
            return True
        if self.unread and self.unread_bytes + len(frame) > self.limit:
            return False
        self.written.append(frame)
        self.wrote.set()
        if not self.reading:
            self.unread.append(frame)
            self.unread_bytes += len(frame)
        return True

    def close(self) -> None:
        self.closed.set()

    def discard(self) -> None:
        self.discarded += len(self.unread)
        self.unread.clear()
        self.unread_bytes = 0

    def backlog(self) -> int:
        return self.unread_bytes

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def take(self, nbytes: int | None = None) -> int:
        """The peer reads up to ``nbytes`` (everything by default): how many frames it took."""
        taken = 0
        while self.unread and (nbytes is None or nbytes >= len(self.unread[0])):
            frame = self.unread.pop(0)
            self.unread_bytes -= len(frame)
            if nbytes is not None:
                nbytes -= len(frame)
            taken += 1
        return taken


class Peer:
    """A STOMP client on the far side of a :class:`MemoryTransport`."""

    def __init__(self, world: World, *, reading: bool = True, **handshake: Any) -> None:
        self.transport = MemoryTransport(
            limit=world.settings.outbound_buffer_bytes, reading=reading
        )
        self.conn = StompConnection(
            world.gateway, self.transport, transport_name="test", **handshake
        )
        self.conn.open()
        self._seen = 0

    def send(self, command: str, headers: dict[str, str] | None = None, body: Any = b"") -> None:
        if isinstance(body, dict):
            body = orjson.dumps(body)
        elif isinstance(body, str):
            body = body.encode()
        self.conn.feed(serialize_frame(Frame(command, tuple((headers or {}).items()), body)))

    async def connect(self, token: str, **headers: str) -> Frame:
        auth = {"Authorization": f"Bearer {token}"}
        self.send("CONNECT", {"accept-version": "1.2", **auth, **headers})
        return await self.expect("CONNECTED")

    async def settle(self) -> None:
        """Until the frames fed so far are handled, and the catch-ups they started are done
        (or wait for the peer to read)."""
        await self.conn.settled()
        written = -1
        while written != len(self.transport.written):  # until nothing more is written
            written = len(self.transport.written)
            tasks = {t for t in self.conn._tasks or () if not t.done()}
            if tasks:
                # A task writing to a peer that reads goes on until it is done (a replay's
                # database read may take a while on a busy machine); for a peer that does not
                # read, a task may wait for it, so there a short quiet spell ends the wait.
                await asyncio.wait(tasks, timeout=2.0 if self.transport.reading else 0.05)
            for _ in range(5):
                await asyncio.sleep(0)

    async def frames(self) -> list[Frame]:
        """The frames written since the last call (heart-beats left out)."""
        await self.settle()
        new = self.transport.written[self._seen :]
        self._seen = len(self.transport.written)
        out: list[Frame] = []
        for data in new:
            parser = FrameParser(max_frame_size=1 << 22)
            parser.receive_data(data)
            item = parser.next_frame()
            if item is not None and item is not HEARTBEAT:
                assert isinstance(item, Frame)
                out.append(item)
        return out

    async def collect(self, count: int, timeout: float = 5.0) -> list[Frame]:
        """The next ``count`` frames at least (commits take a thread's while on SQLite)."""
        got: list[Frame] = []
        async with asyncio.timeout(timeout):
            while len(got) < count:
                got += await self.frames()
                if len(got) < count:
                    await asyncio.sleep(0.005)
        return got

    async def expect(self, *commands: str) -> Frame:
        """The next frames are exactly ``commands``; returns the last."""
        got = await self.collect(len(commands))
        assert [f.command for f in got] == list(commands), got
        return got[-1]

    async def wait_for(self, command: str, timeout: float = 5.0) -> Frame:
        """Read frames until one is ``command`` (within ``timeout``)."""
        async with asyncio.timeout(timeout):
            while True:
                for frame in await self.frames():
                    if frame.command == command:
                        return frame
                await asyncio.sleep(0.01)


def body(frame: Frame) -> Any:
    return orjson.loads(frame.body)


@dataclass
class World:
    settings: Settings
    db: Database
    chat: ChatService
    gateway: Gateway
    couple: Couple
    a: User
    b: User
    other: Couple

    def token(self, user: User, ttl: int = 600) -> str:
        return issue_token(self.settings, user.id, ttl=ttl)

    def break_table(self, table: str) -> None:
        """A real database fault: the table is gone (queries on it raise StoreError)."""
        path = self.settings.database_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as db:
            db.execute(f"ALTER TABLE {table} RENAME TO {table}_gone")

    async def member(self, user: User | None = None, **options: Any) -> Peer:
        """A connected peer of the couple, subscribed to its error queue."""
        peer = Peer(self, **options)
        await peer.connect(self.token(user or self.a))
        peer.send("SUBSCRIBE", {"id": "errors", "destination": "/user/queue/errors"})
        await peer.settle()
        return peer


def template_database(directory: Path) -> Path:
    """A migrated SQLite file for :func:`world` to copy (make it once, in a fixture)."""
    path = directory / "template.db"
    upgrade_schema(f"sqlite:///{path}")
    return path


@asynccontextmanager
async def world(tmp_path: Path, template: Path, **overrides: Any) -> AsyncIterator[World]:
    db_path = tmp_path / "chat.db"
    shutil.copy(template, db_path)
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{db_path}",
        "jwt_secret": SECRET,
        "heartbeat_ms": (0, 0),
        "outbound_buffer_bytes": 65536,
        "message_rate": 100000.0,
        "message_burst": 100000,
        **overrides,
    }
    settings = Settings(**values)
    db = await Database.connect(settings.database_url)
    broker = create_broker(None)
    await broker.start()
    chat = ChatService(db, broker, settings, TokenVerifier(settings))
    await chat.start()
    gateway = Gateway(settings=settings, chat=chat, hub=Hub(broker))
    try:
        [(couple, a, b), (other, _, _)] = await db.seed_couples(2)
        yield World(settings, db, chat, gateway, couple, a, b, other)
    finally:
        for conn in list(gateway.connections):
            conn.close()
            await conn.teardown()
        await chat.close()
        await broker.close()
        await db.close()
