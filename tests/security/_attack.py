"""What the security tests share: a raw attacking socket that never reads, the server's
resident memory, and a member who chats meanwhile and must lose nothing."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import json
import os
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.support.server import ServerProcess
from tests.support.stomp_client import StompTestClient
from tests.support.ws_frames import TEXT, client_frame

__all__ = [
    "Member",
    "Outcome",
    "RssWatch",
    "Socket",
    "connect_frame",
    "kernel_buffers",
    "rss_kib",
    "upgrade",
]

SOCKJS_PATH = "/ws/chat/000/abcdefgh/websocket"


def rss_kib(pid: int) -> int:
    """The process's resident set (VmRSS of /proc/PID/status), in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS line")


@dataclass
class RssWatch:
    """Samples a process's RSS every ``period`` seconds while running (an async context)."""

    pid: int
    period: float = 0.05
    baseline: int = 0
    peak: int = 0
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RssWatch:
        self.baseline = self.peak = rss_kib(self.pid)
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.peak = max(self.peak, rss_kib(self.pid))

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_kib(self.pid))
            await asyncio.sleep(self.period)

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / 1024


def upgrade(path: str, *, subprotocol: bool = True) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocol:
        lines.append("Sec-WebSocket-Protocol: v12.stomp")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def connect_frame(token: str, *, sockjs: bool) -> bytes:
    """A STOMP CONNECT carrying ``token``, as one client text frame (SockJS-framed if asked)."""
    stomp = f"CONNECT\naccept-version:1.2\nheart-beat:0,0\nAuthorization:Bearer {token}\n\n\0"
    payload = json.dumps([stomp]) if sockjs else stomp
    return client_frame(TEXT, payload.encode())


def kernel_buffers() -> int:
    """The most the kernel may hold of one loopback connection's bytes between a send() and
    the peer's read: the peer's receive buffer and our send buffer at their autotuning
    limits (the maxima of ``tcp_rmem`` and ``tcp_wmem``)."""

    def limit(name: str) -> int:
        with open(f"/proc/sys/net/ipv4/{name}") as values:
            return int(values.read().split()[2])

    return limit("tcp_rmem") + limit("tcp_wmem")


# A flood that makes no progress for this long is stalled: the server stopped reading it.
STALL_SECONDS = 1.0


class Outcome(enum.Enum):
    CLOSED = "closed"  # the server reset or ended the connection
    FAILED = "failed"  # the server sent a Close frame
    STALLED = "stalled"  # the server stopped reading: our sends made no progress
    FLOWING = "flowing"  # the server took everything we sent


@dataclass
class Socket:
    """One attacking connection: a small receive buffer, and nothing read after the 101."""

    port: int
    sock: socket.socket = field(init=False)
    sent: int = 0

    def __post_init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", self.port))

    def open(self, path: str) -> None:
        """Handshake; fails the test unless the server upgrades."""
        self.sock.sendall(upgrade(path))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)  # byte by byte: nothing past the head is read
            assert chunk, "closed during the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head

    def flood(self, prologue: bytes, chunk: bytes, seconds: float, budget: int) -> Outcome:
        """Send ``prologue`` then ``chunk`` again and again, never reading, until the server
        closes, stops taking it (no progress for ``STALL_SECONDS``: STALLED) or has taken more than
        ``budget`` bytes (then, or after ``seconds``, as FLOWING unless it sent a Close). A
        budget in bytes, not a time, since a bounded server stalls us only once the kernel's
        buffers between us are full, and those differ from one machine to the next."""
        sock = self.sock
        sock.setblocking(False)
        data = memoryview(prologue + chunk)
        end = time.monotonic() + seconds
        progress = time.monotonic()
        try:
            while (now := time.monotonic()) < end and now - progress < STALL_SECONDS:
                if self.sent > budget:
                    return self._after_flowing()
                _, writable, _ = select.select([], [sock], [], min(0.1, end - now))
                if not writable:
                    continue
                try:
                    taken = sock.send(data)
                except BlockingIOError:
                    continue
                self.sent += taken
                progress = time.monotonic()
                data = data[taken:]
                if not data:
                    data = memoryview(chunk)
        except (ConnectionResetError, BrokenPipeError):
            return Outcome.CLOSED
        if time.monotonic() - progress >= STALL_SECONDS:
            return Outcome.STALLED
        return self._after_flowing()

    def _after_flowing(self) -> Outcome:
        """The server took it all: did it at least fail the connection (a Close frame)?"""
        sock = self.sock
        sock.settimeout(3)
        received = b""
        with contextlib.suppress(TimeoutError, OSError):
            while len(received) < 1 << 22:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
                if _has_close(received):
                    return Outcome.FAILED
        return Outcome.FLOWING

    def close(self) -> None:
        self.sock.close()


def _has_close(stream: bytes) -> bool:
    """Whether a Close frame is among the server frames (unmasked) in ``stream``."""
    return any(opcode == 8 for opcode in _opcodes(stream))


def _opcodes(stream: bytes) -> Iterator[int]:
    pos = 0
    while pos + 2 <= len(stream):
        length = stream[pos + 1] & 0x7F
        head = 2
        if length == 126:
            if pos + 4 > len(stream):
                return
            length = int.from_bytes(stream[pos + 2 : pos + 4], "big")
            head = 4
        elif length == 127:
            if pos + 10 > len(stream):
                return
            length = int.from_bytes(stream[pos + 2 : pos + 10], "big")
            head = 10
        yield stream[pos] & 0x0F
        pos += head + length


@dataclass
class Member:
    """A member chatting on their own socket: each SEND must get its RECEIPT and its MESSAGE."""

    client: StompTestClient
    destination: str
    sent: int = 0
    confirmed: int = 0
    latencies: list[float] = field(default_factory=list)  # SEND -> RECEIPT, for the record

    @classmethod
    async def join(cls, server: ServerProcess, token: str, couple: str) -> Member:
        client = await StompTestClient.connected(server.ws_url, token)
        await client.subscribe(f"/topic/couple/{couple}")
        return cls(client, f"/app/chat/{couple}")

    async def chat_until(self, done: asyncio.Event) -> None:
        """SEND, wait for its RECEIPT and echo, again, until ``done``; at least once."""
        while True:
            self.sent += 1
            receipt = f"m-{self.sent}"
            body = {"type": "TEXT", "content": f"안녕 {self.sent}", "tempId": receipt}
            started = time.monotonic()
            await self.client.send(
                "SEND", {"destination": self.destination, "receipt": receipt}, body
            )
            seen = await self.client.receipt(receipt, timeout=15)
            self.latencies.append(time.monotonic() - started)
            if not any(message.get("tempId") == receipt for message in seen):
                echo = await self.client.expect_message(timeout=15)
                assert echo.get("tempId") == receipt, echo
            self.confirmed += 1
            if done.is_set():
                return
            await asyncio.sleep(0.05)
