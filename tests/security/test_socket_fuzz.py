"""Threat: a peer that speaks broken RFC 6455 (any opcode, any header bits, masked or not, any
length, Close codes that may not be sent, fragments interleaved with control frames, bytes
split anywhere, connections dropped mid-frame) makes the server crash, leak, or stall others.

Bound: whatever a socket sends, the server's RSS grows by less than ``RSS_BOUND_MIB`` over a
run of ``CONNECTIONS`` hostile sockets, no exception reaches the server's log, and a member
chatting meanwhile on another socket gets every RECEIPT and every message of their own. The
sequences come from seeded generators, so a failure names its seed and replays.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct

import pytest

from tests.security._attack import SOCKJS_PATH, Member, RssWatch, connect_frame, upgrade
from tests.support.server import ServerProcess
from tests.support.ws_frames import client_frame

Couple = dict[str, str]

CONNECTIONS = 100
RSS_BOUND_MIB = 24.0
PATHS = ["/ws/chat", "/ws/chat/websocket", SOCKJS_PATH]
OPCODES = [0x0, 0x1, 0x2, 0x3, 0x7, 0x8, 0x9, 0xA, 0xB, 0xF]


# The fuzzing is about the socket, not the database: SQLite only.
pytestmark = pytest.mark.backends("sqlite")


def valid_frame(rng: random.Random, token: str, path: str, state: dict[str, bool]) -> bytes:
    """A well-formed frame that keeps the fragmentation state (§5.4) right."""
    mask = bytes(rng.getrandbits(8) for _ in range(4))
    roll = rng.random()
    if roll < 0.05:
        return connect_frame(token, sockjs=path == SOCKJS_PATH)
    if roll < 0.25:
        return client_frame(
            0x9, bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 125))), mask=mask
        )
    if roll < 0.3:
        return client_frame(0xA, b"unsolicited", mask=mask)
    fin = rng.random() < 0.6
    opcode = 0x0 if state["open"] else rng.choice([0x1, 0x2])
    payload = rng.choice([b"", b"x", '["안녕"]'.encode(), b"SEND\n\n\0", b"y" * 300])
    state["open"] = not fin
    return client_frame(opcode, payload, fin=fin, mask=mask)


def hostile_frame(rng: random.Random, token: str, path: str, state: dict[str, bool]) -> bytes:
    """Usually a valid frame, sometimes a broken one: the bugs sit next to valid input."""
    if rng.random() < 0.9:
        return valid_frame(rng, token, path, state)
    if rng.random() < 0.2:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40)))  # noise
    opcode = rng.choice(OPCODES)
    payload = bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 1, 2, 5, 125, 126, 300])))
    if opcode == 0x8 and rng.random() < 0.7:
        code = rng.choice([1000, 1001, 1004, 1005, 1006, 1015, 2000, 2999, 3000, 4999, 5000, 0])
        payload = struct.pack("!H", code) + payload[:20]
    length = rng.choice([None] * 9 + [len(payload) + 1, 1 << 40])
    # A longer encoding than needed is a protocol error too (§5.2: minimal encoding).
    width = 64 if length == 1 << 40 else rng.choice([None] * 9 + [16, 64])
    return client_frame(
        opcode,
        payload,
        fin=rng.random() < 0.7,
        rsv=rng.choice([0, 0, 0, 0, 1, 4]),
        mask=None if rng.random() < 0.05 else bytes(rng.getrandbits(8) for _ in range(4)),
        length=length,
        width=width,
    )


def attack(port: int, rng: random.Random, token: str) -> None:
    """One hostile connection: a handshake, a random frame sequence in random chunks, then an
    abrupt or an orderly end."""
    path = rng.choice(PATHS)
    state = {"open": False}
    stream = upgrade(path) + b"".join(
        hostile_frame(rng, token, path, state) for _ in range(rng.randint(1, 200))
    )
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        try:
            pos = 0
            while pos < len(stream):
                step = rng.choice([1, 7, 64, 1500, len(stream)])
                sock.sendall(stream[pos : pos + step])
                pos += step
            if rng.random() < 0.5:
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):  # until the server closes
                    pass
        except OSError:
            pass  # reset by the server: it was entitled to


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_frame_sequences(server: ServerProcess, couple: Couple, seed: int) -> None:
    assert server.proc is not None
    rng = random.Random(seed)
    log_start = len(server.log_text())
    member = await Member.join(server, couple["tb"], couple["couple"])
    done = asyncio.Event()
    chatting = asyncio.create_task(member.chat_until(done))
    try:
        async with RssWatch(server.proc.pid) as rss:
            for _ in range(CONNECTIONS):
                await asyncio.to_thread(attack, server.port, rng, couple["ta"])
            done.set()
            await asyncio.wait_for(chatting, 30)
    finally:
        chatting.cancel()
        await member.client.close()
    print(f"seed {seed}: +{rss.growth_mib:.1f} MiB, member {member.confirmed}/{member.sent}")
    assert rss.growth_mib < RSS_BOUND_MIB, f"seed {seed}: RSS grew by {rss.growth_mib:.0f} MiB"
    assert member.confirmed == member.sent >= 1
    assert "Traceback" not in server.log_text()[log_start:]
    # The server is still whole: a fresh socket chats.
    again = await Member.join(server, couple["ta"], couple["couple"])
    done = asyncio.Event()
    done.set()
    await again.chat_until(done)
    await again.client.close()
