"""Nothing lost, and the server stays up when a client misbehaves: per-user limits, slow
consumers, graceful shutdown, database faults, read state after a reconnect."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.fixtures import SERVER_ENV
from tests.support.postgres import (
    create_database,
    drop_database,
    postgres_address,
    require_postgres,
    through_port,
)
from tests.support.server import Cli, ServerProcess
from tests.support.stomp_client import StompTestClient, frame_json
from tests.support.tcp_proxy import ProxyFactory, TcpProxy

Couple = dict[str, str]

# This module's server has low limits, so tests can reach them quickly.
LIMITS = {
    "IEUM_MAX_SESSIONS_PER_USER": "3",
    "IEUM_MESSAGE_RATE": "5",
    "IEUM_MESSAGE_BURST": "10",
    "IEUM_CONTROL_RATE": "2",
    "IEUM_CONTROL_BURST": "4",
    "IEUM_MAX_SUBSCRIPTIONS": "8",
    "IEUM_OUTBOUND_BUFFER_BYTES": "262144",
}
pytestmark = pytest.mark.server_env(LIMITS)


def text(content: str, temp_id: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {"type": "TEXT", "content": content}
    if temp_id:
        body["tempId"] = temp_id
    return body


async def member(server: ServerProcess, token: str, couple: Couple) -> StompTestClient:
    client = await StompTestClient.connected(server.ws_url, token)
    await client.subscribe("/user/queue/errors")
    await client.subscribe(f"/topic/couple/{couple['couple']}")
    return client


async def read_until_closed(client: StompTestClient) -> list[str]:
    """The commands of every frame until the server closes the socket."""
    commands: list[str] = []
    try:
        while True:
            commands.append((await client.next_frame(timeout=10)).command)
    except ConnectionClosed:
        return commands


async def messages_until_quiet(client: StompTestClient, quiet: float = 1.0) -> list[Any]:
    messages: list[Any] = []
    try:
        while True:
            messages.append(await client.expect_message(timeout=quiet))
    except TimeoutError:
        return messages


# -- per-user limits ------------------------------------------------------------------------


async def test_sessions_per_user_are_limited(server: ServerProcess, couple: Couple) -> None:
    sessions = [await StompTestClient.connected(server.ws_url, couple["ta"]) for _ in range(3)]
    extra = await StompTestClient.open(server.ws_url, token=couple["ta"])
    await extra.send("CONNECT", {"accept-version": "1.2"})
    error = await extra.expect("ERROR")
    assert error.get("message") == "RATE_LIMITED"
    assert await extra.closed()
    await sessions[0].close()
    await asyncio.sleep(0.3)
    again = await StompTestClient.connected(server.ws_url, couple["ta"])  # a slot is free
    await again.close()


async def test_message_rate_is_limited_and_nothing_extra_stored(
    server: ServerProcess, couple: Couple
) -> None:
    a = await member(server, couple["ta"], couple)
    b = await member(server, couple["tb"], couple)
    dest = f"/app/chat/{couple['couple']}"
    for i in range(14):
        await a.send("SEND", {"destination": dest, "receipt": f"r{i}"}, text(f"m{i}", f"t{i}"))
    receipts: list[str | None] = []
    limited: list[str] = []
    while len(receipts) + len(limited) < 14:
        frame = await a.next_frame()
        if frame.command == "RECEIPT":
            receipts.append(frame.get("receipt-id"))
        else:
            body = frame.body.decode()
            if '"code":"RATE_LIMITED"' in body:
                limited.append(body)
    assert 10 <= len(receipts) < 14
    assert len(limited) == 14 - len(receipts)
    assert all('"tempId":"t' in body for body in limited)
    delivered = [await b.expect_message() for _ in range(len(receipts))]
    assert [m["seq"] for m in delivered] == list(range(1, len(receipts) + 1))
    await b.assert_silent(0.5)
    # The bucket refills: after a pause the user may send again.
    await asyncio.sleep(1.0)
    await a.send("SEND", {"destination": dest, "receipt": "later"}, text("later", "t-later"))
    await a.receipt("later")
    later = await b.expect_message()
    assert later["seq"] == len(receipts) + 1


async def test_typing_and_read_rate_is_limited(server: ServerProcess, couple: Couple) -> None:
    a = await member(server, couple["ta"], couple)
    dest = f"/app/chat/{couple['couple']}/typing"
    for i in range(8):  # alternating states, so none is dropped as a repeat
        await a.send("SEND", {"destination": dest, "receipt": f"t{i}"}, {"typing": i % 2 == 0})
    events, receipts = 0, 0
    errors: list[str] = []
    while receipts + len(errors) < 8:
        frame = await a.next_frame()
        if frame.command == "RECEIPT":
            receipts += 1
        elif b'"type":"ERROR"' in frame.body:
            errors.append(frame_json(frame)["code"])
        else:
            events += 1
    assert receipts == 4  # the burst
    assert errors == ["RATE_LIMITED"] * 4
    await a.send("SEND", {"destination": dest + "/../read"}, {"upToSeq": 1})
    await asyncio.sleep(0.6)  # one token back at 2/s
    await a.send(
        "SEND",
        {"destination": f"/app/chat/{couple['couple']}/read", "receipt": "rd"},
        {"upToSeq": 1},
    )
    await a.receipt("rd")


async def test_subscriptions_per_session_are_limited(server: ServerProcess, couple: Couple) -> None:
    client = await StompTestClient.connected(server.ws_url, couple["ta"])
    for i in range(8):
        await client.send(
            "SUBSCRIBE", {"id": f"s{i}", "destination": f"/topic/couple/{couple['couple']}"}
        )
    await client.send("SUBSCRIBE", {"id": "s8", "destination": "/user/queue/errors"})
    error = await client.expect("ERROR")
    assert error.get("message") == "PROTOCOL_ERROR"
    assert "subscriptions" in frame_json(error)["detail"]
    assert await client.closed()


# -- slow consumers -------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_slow_consumer_is_closed_and_others_keep_chatting(
    cli: Cli, couple: Couple, tmp_path: Path
) -> None:
    env = {**SERVER_ENV, "IEUM_MESSAGE_RATE": "100000", "IEUM_MESSAGE_BURST": "100000"}
    server = ServerProcess(cli, tmp_path / "server.log", extra_env=env).start()
    try:
        assert server.proc is not None
        a = await member(server, couple["ta"], couple)
        b = await member(server, couple["tb"], couple)
        # The slow consumer: a socket with a tiny receive buffer that stops reading.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        slow_ws = await connect(
            f"{server.ws_url}?token={couple['tb']}", sock=sock, max_size=None, ping_interval=None
        )
        slow = StompTestClient(slow_ws)
        await slow.send("CONNECT", {"accept-version": "1.2", "heart-beat": "0,0"})
        await slow.expect("CONNECTED")
        await slow.subscribe(f"/topic/couple/{couple['couple']}")
        slow_ws.transport.pause_reading()
        before = rss_kib(server.proc.pid)
        dest = f"/app/chat/{couple['couple']}"
        body = "x" * 1000
        count = 6000

        got = 0

        async def partner_reads() -> int:
            nonlocal got
            while got < count:
                message = await b.expect_message(timeout=20)
                got += message.get("type") == "TEXT"
            return got

        reading = asyncio.create_task(partner_reads())
        started = time.monotonic()
        for i in range(count):
            await a.send("SEND", {"destination": dest, "receipt": f"r{i}"}, text(body))
            if i % 200 == 199:  # count is a multiple of 200: the last RECEIPT is awaited
                await a.receipt(f"r{i}", timeout=20)
        try:
            assert await reading == count
        except TimeoutError:
            raise AssertionError(f"partner got {got} of {count}") from None
        elapsed = time.monotonic() - started
        grown = rss_kib(server.proc.pid) - before
        # The reader that stopped was cut off; its frames are not held in memory.
        assert "slow consumer" in server.log_text()
        assert grown < 64 * 1024, f"server RSS grew {grown} KiB"
        slow_ws.transport.resume_reading()
        frames = await read_until_closed(slow)
        assert frames[-1] == "ERROR"
        print(
            f"slow consumer: {count} x 1 KB messages delivered to the partner in "
            f"{elapsed:.2f}s ({count / elapsed:.0f}/s); server RSS +{grown} KiB"
        )
    finally:
        server.stop()


# -- graceful shutdown ----------------------------------------------------------------------


async def test_sigterm_drains_sessions(cli: Cli, couple: Couple, tmp_path: Path) -> None:
    server = ServerProcess(cli, tmp_path / "server.log", extra_env=SERVER_ENV).start()
    a = await member(server, couple["ta"], couple)
    dest = f"/app/chat/{couple['couple']}"
    for i in range(100):
        await a.send("SEND", {"destination": dest, "receipt": f"r{i}"}, text(f"m{i}", f"t{i}"))
    assert server.proc is not None
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    receipts: list[str] = []
    error = None
    try:
        while True:
            frame = await a.next_frame(timeout=15)
            if frame.command == "RECEIPT":
                receipts.append(frame.get("receipt-id") or "")
            elif frame.command == "ERROR":
                error = frame
    except (ConnectionClosed, TimeoutError):  # the connection ends after the ERROR
        pass
    code = server.stop()
    assert time.monotonic() - started < 15
    # uvicorn re-raises the signal once it has shut down cleanly.
    assert code in (0, -signal.SIGTERM)
    assert error is not None
    assert error.get("message") == "SERVER_SHUTDOWN"
    # Every RECEIPT the client got is a stored message, and after a restart the client
    # resumes and finds exactly those (plus any it retries with the same tempId).
    server.start()
    try:
        late = await StompTestClient.connected(server.ws_url, couple["tb"])
        await late.subscribe(f"/topic/couple/{couple['couple']}", {"x-resume-after-seq": "0"})
        stored = await messages_until_quiet(late)
        assert {m["tempId"] for m in stored} >= {f"t{r[1:]}" for r in receipts}
        assert [m["seq"] for m in stored] == list(range(1, len(stored) + 1))
    finally:
        server.stop()


# -- database faults (PostgreSQL behind a proxy that cuts connections) ----------------------


@pytest.fixture
def proxied_pg(tcp_proxy: ProxyFactory) -> Iterator[tuple[Cli, TcpProxy]]:
    require_postgres()
    url = create_database()
    proxy = tcp_proxy(*postgres_address())
    try:
        Cli.for_database(url).run("migrate")
        yield Cli.for_database(through_port(url, proxy.port)), proxy
    finally:
        drop_database(url)


async def test_database_outage_fails_sends_then_recovers(
    proxied_pg: tuple[Cli, TcpProxy], tmp_path: Path
) -> None:
    cli, proxy = proxied_pg
    pair = cli.seed(1)[0]
    server = ServerProcess(cli, tmp_path / "server.log", extra_env=SERVER_ENV).start()
    try:
        a = await member(server, pair["ta"], pair)
        b = await member(server, pair["tb"], pair)
        dest = f"/app/chat/{pair['couple']}"
        await a.send("SEND", {"destination": dest, "receipt": "ok1"}, text("before", "t1"))
        await a.receipt("ok1")
        assert (await b.expect_message())["seq"] == 1
        proxy.cut()
        await a.send("SEND", {"destination": dest, "receipt": "fail"}, text("during", "t2"))
        seen = await a.messages_until(lambda m: m.get("type") == "ERROR", timeout=15)
        error = seen[-1]
        assert (error["code"], error["tempId"]) == ("SEND_FAILED", "t2")
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{server.http_url}/healthz", timeout=5)).status_code == 200
            offline = await http.post(
                f"{server.http_url}/chat/rooms/{pair['couple']}/messages",
                json=text("via rest", "t-rest"),
                headers={"Authorization": f"Bearer {pair['ta']}"},
                timeout=20,
            )
        # A database failure is the server's condition, not bad input: 503, retry later.
        assert offline.status_code == 503
        assert offline.json()["code"] in {"SEND_FAILED", "UNAVAILABLE"}
        proxy.restore()
        # The client retries with the same tempId; the server recovered by itself.
        deadline = time.monotonic() + 20
        while True:
            await a.send("SEND", {"destination": dest, "receipt": "retry"}, text("during", "t2"))
            try:
                await a.receipt("retry", timeout=5)
                break
            except TimeoutError:  # no RECEIPT yet: the server has not reconnected
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        got = await b.messages_until(lambda m: m.get("tempId") == "t2", timeout=10)
        assert got[-1]["seq"] == 2
    finally:
        server.stop()


# -- read state after a reconnect -----------------------------------------------------------


async def test_read_state_is_correct_after_reconnect(server: ServerProcess, couple: Couple) -> None:
    a = await member(server, couple["ta"], couple)
    b = await member(server, couple["tb"], couple)
    dest = f"/app/chat/{couple['couple']}"
    for i in range(3):
        await a.send("SEND", {"destination": dest, "receipt": f"r{i}"}, text(f"m{i}"))
        await a.receipt(f"r{i}")
    await b.send("SEND", {"destination": dest + "/read", "receipt": "rd"}, {"upToSeq": 2})
    await b.receipt("rd")
    await a.close()
    again = await StompTestClient.connected(server.ws_url, couple["ta"])
    await again.subscribe(f"/topic/couple/{couple['couple']}", {"x-resume-after-seq": "0"})
    replayed = [await again.expect_message() for _ in range(3)]
    assert [(m["seq"], m["isRead"], m["readAt"] is not None) for m in replayed] == [
        (1, True, True),
        (2, True, True),
        (3, False, False),
    ]
