"""Threat: one WebSocket peer, with or without a token, makes the server hold memory or CPU
that nobody bounded.

- **Ping flood** (RFC 6455 §5.5.2 makes every Ping call for a Pong): a client that never reads
  sends Ping after Ping. Bound: every byte the server produces for a peer, Pongs and Close
  included, counts against ``IEUM_OUTBOUND_BUFFER_BYTES``; past it the server stops reading
  that socket until the peer takes what is queued, and only the most recent unanswered Ping is
  answered (§5.5.3).
- **Empty continuation frames** (§5.4): a message opened and never finished, continued by
  empty fragments. Bound: a message has at most 1024 fragments (the connection fails with
  1008) and four times ``IEUM_MAX_FRAME_SIZE`` bytes (1009). One socket parses at most 128
  frames per event-loop turn, then stops reading until a later turn: the others go first.

Each flood runs for a few seconds against a real server, on every WebSocket path the server
speaks (raw STOMP, its ``/websocket`` alias, SockJS's websocket transport), with no token and
after a CONNECT. The server's RSS must grow by less than ``RSS_BOUND_MIB``, the attacker must
be paused or closed, and a member chatting on another socket meanwhile loses nothing.
"""

from __future__ import annotations

import asyncio
import statistics

import pytest

from tests.security._attack import (
    SOCKJS_PATH,
    Member,
    Outcome,
    RssWatch,
    Socket,
    connect_frame,
    kernel_buffers,
)
from tests.support.server import ServerProcess

Couple = dict[str, str]

# How long a flood may go on at most (a bounded server stalls it within a few seconds), and
# what the attacker may push before the server counts as reading it all: twice what the kernel
# can buffer both ways (its limits differ by machine: 6 MiB to 32 MiB of receive buffer), plus
# the server's outbound bound and more. An unbounded server read 30 to 300 MiB in 3 seconds.
FLOOD_SECONDS = 30.0
FLOOD_BUDGET = 2 * 2 * kernel_buffers() + 16 * 2**20
# Generous against allocator noise and the member's own traffic (bounded, the server grows by
# about 2 MiB at most); unbounded, it grew by 30 to 300 MiB in three seconds of a flood.
RSS_BOUND_MIB = 16.0

PING_FLOOD = (b"\x89\xfd\0\0\0\0" + b"x" * 125) * 512
OPEN_MESSAGE = b"\x01\x81\0\0\0\0C"  # a text message's first fragment, not final
EMPTY_CONTINUATIONS = b"\x00\x80\0\0\0\0" * 50000

FLOODS = {"ping": (b"", PING_FLOOD), "empty-continuation": (OPEN_MESSAGE, EMPTY_CONTINUATIONS)}
PATHS = {"raw": "/ws/chat", "raw-alias": "/ws/chat/websocket", "sockjs": SOCKJS_PATH}


# The floods are about the socket, not the database: SQLite only.
pytestmark = pytest.mark.backends("sqlite")


async def run_flood(
    server: ServerProcess, couple: Couple, path: str, flood: str, *, connected: bool
) -> tuple[Outcome, RssWatch, Member]:
    assert server.proc is not None
    member = await Member.join(server, couple["tb"], couple["couple"])
    attacker = Socket(server.port)
    try:
        await asyncio.to_thread(attacker.open, path)
        prologue, chunk = FLOODS[flood]
        if connected:
            prologue = connect_frame(couple["ta"], sockjs=path == SOCKJS_PATH) + prologue
        done = asyncio.Event()
        async with RssWatch(server.proc.pid) as rss:
            chatting = asyncio.create_task(member.chat_until(done))
            outcome = await asyncio.to_thread(
                attacker.flood, prologue, chunk, FLOOD_SECONDS, FLOOD_BUDGET
            )
            done.set()
            await asyncio.wait_for(chatting, 30)
    finally:
        attacker.close()
        await member.client.close()
    return outcome, rss, member


@pytest.mark.parametrize("flood", list(FLOODS))
@pytest.mark.parametrize(
    ("path", "connected"),
    [
        (PATHS["raw"], False),
        (PATHS["raw"], True),
        (PATHS["raw-alias"], False),
        (PATHS["sockjs"], False),
        (PATHS["sockjs"], True),
    ],
    ids=["raw", "raw-connected", "raw-alias", "sockjs", "sockjs-connected"],
)
async def test_flood_is_bounded(
    server: ServerProcess, couple: Couple, path: str, connected: bool, flood: str
) -> None:
    outcome, rss, member = await run_flood(server, couple, path, flood, connected=connected)
    median = statistics.median(member.latencies) * 1000
    print(
        f"{flood} on {path} (connected={connected}): {outcome.value}, "
        f"+{rss.growth_mib:.1f} MiB, member SEND->RECEIPT median {median:.0f} ms"
    )
    assert rss.growth_mib < RSS_BOUND_MIB, f"server RSS grew by {rss.growth_mib:.0f} MiB"
    assert outcome is not Outcome.FLOWING, "the server read the whole flood"
    assert member.confirmed == member.sent >= 1
