"""Threat: clients that resume from seq 0 and never read.

A SUBSCRIBE with ``x-resume-after-seq`` replays the couple's history from the database. The
replay once wrote whole pages to the socket without looking at the outbound bound
(``IEUM_OUTBOUND_BUFFER_BYTES``): eight sessions that resumed from 0 on a couple of 608
messages of 4,000 characters and never read held 14.8 MB of backlog against a 1 MiB limit,
and each more such session held more. (The history here is Korean text, 7.3 MB, more than
the 4 MB the kernel buffers for one loopback socket, so the rest has to wait in the server.)
Replay now waits for the socket to drain below a
low-water mark before it writes on, so a session that never reads holds at most about its
bound, and is closed as a slow consumer when it stops taking bytes altogether.

Against a real server: the backlog gauge and the server's RSS stay bounded while the
sessions hang, and a session that does read still gets the whole history, in order.
"""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.support.server import ServerProcess
from tests.support.stomp_client import StompTestClient

MESSAGES = 608
CHARS = 4000
SESSIONS = 8
LIMIT = 1 << 20  # the default IEUM_OUTBOUND_BUFFER_BYTES
WATCH = 6.0  # seconds the hanging sessions are watched


pytestmark = [
    pytest.mark.backends("sqlite"),
    pytest.mark.server_env({"IEUM_MESSAGE_RATE": "100000", "IEUM_MESSAGE_BURST": "100000"}),
]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def backlog_gauge(http: httpx.AsyncClient) -> float:
    text = (await http.get("/metrics")).text
    match = re.search(r"^ieum_outbound_backlog_bytes (\S+)$", text, re.MULTILINE)
    assert match is not None
    return float(match.group(1))


async def fill_history(server: ServerProcess, couple: dict[str, str]) -> None:
    sender = await StompTestClient.connected(server.ws_url, couple["ta"])
    dest = f"/app/chat/{couple['couple']}"
    for i in range(MESSAGES):
        content = f"{i:04d}" + "가" * (CHARS - 4)  # 12 KB of UTF-8: 7.3 MB in all
        await sender.send(
            "SEND", {"destination": dest, "receipt": f"r{i}"}, {"type": "TEXT", "content": content}
        )
        if i % 100 == 99 or i == MESSAGES - 1:
            await sender.receipt(f"r{i}", timeout=30)
    await sender.close()


async def hanging_session(server: ServerProcess, couple: dict[str, str]) -> ClientConnection:
    """CONNECT, then SUBSCRIBE from seq 0, and never read again (a tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    ws = await connect(
        f"{server.ws_url}?token={couple['tb']}", sock=sock, max_size=None, ping_interval=None
    )
    await ws.send("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\0")
    assert str(await ws.recv()).startswith("CONNECTED")
    ws.transport.pause_reading()
    await ws.send(
        f"SUBSCRIBE\nid:h\ndestination:/topic/couple/{couple['couple']}\nx-resume-after-seq:0\n\n\0"
    )
    return ws


async def test_sessions_that_never_read_stay_bounded(
    server: ServerProcess, couple: dict[str, str]
) -> None:
    assert server.proc is not None
    await fill_history(server, couple)
    # Warm up: what replays allocate for good (a database connection, and its thread's
    # malloc arena, per concurrent replay) is not what this test is about.
    await asyncio.gather(*(read_history(server, couple) for _ in range(SESSIONS)))
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        await backlog_gauge(http)
        before = rss_kib(server.proc.pid)
        hanging = [await hanging_session(server, couple) for _ in range(SESSIONS)]
        peak_backlog = 0.0
        peak_rss = before
        loop = asyncio.get_running_loop()
        end = loop.time() + WATCH
        while loop.time() < end:
            peak_backlog = max(peak_backlog, await backlog_gauge(http))
            peak_rss = max(peak_rss, rss_kib(server.proc.pid))
            await asyncio.sleep(0.1)
    grown = peak_rss - before
    print(f"peak backlog {peak_backlog / 1e6:.2f} MB; server RSS +{grown} KiB")
    # A replay writes a quarter of the bound, then waits for the backlog to fall below a
    # quarter: each session holds about half its bound, however much history is left.
    bound = SESSIONS * (LIMIT // 2 + 16 * 1024)
    assert peak_backlog <= bound, f"backlog reached {peak_backlog:.0f} bytes"
    # Each session may hold that and one replay page (50 messages of about 32 KB as row,
    # JSON and frame): about 21 MB for the eight. Not the history (7.3 MB) times the sessions.
    assert grown < 40 * 1024, f"server RSS grew {grown} KiB"
    for ws in hanging:
        ws.transport.abort()


async def read_history(server: ServerProcess, couple: dict[str, str]) -> None:
    client = await StompTestClient.connected(server.ws_url, couple["tb"])
    topic = f"/topic/couple/{couple['couple']}"
    await client.send("SUBSCRIBE", {"id": "t", "destination": topic, "x-resume-after-seq": "0"})
    seqs = [(await client.expect_message(timeout=10))["seq"] for _ in range(MESSAGES)]
    assert seqs == list(range(1, MESSAGES + 1))
    await client.close()


async def test_a_reading_session_still_gets_the_whole_history(
    server: ServerProcess, couple: dict[str, str]
) -> None:
    await fill_history(server, couple)
    await read_history(server, couple)
