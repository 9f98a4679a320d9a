"""``ieum-chat serve --workers 2``: two worker processes on one port (SO_REUSEPORT) under a
supervisor, SQLite and the machine's Redis. Each worker names itself in the STOMP CONNECTED
frame's ``server`` header (``(worker I; pid P)``), so a test knows where a client landed."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ieum_chat.observability import metrics
from tests.support.chat import both_send_at_once, text
from tests.support.fixtures import SERVER_ENV
from tests.support.redis import REDIS_URL, delete_prefix, require_redis, unique_prefix
from tests.support.server import Cli, ServerProcess
from tests.support.stomp_client import StompTestClient

Couple = dict[str, str]
Worker = tuple[int, int]  # (index, pid)

_WORKER = re.compile(r"\(worker (\d+); pid (\d+)\)")
# Guards only: every wait below ends as soon as what it waits for happens.
LANDING_TRIES = 200
GUARD = 60.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    require_redis()
    workdir: Path = tmp_path_factory.mktemp("workers")
    prefix = unique_prefix()
    cli = Cli.for_database(
        f"sqlite:///{workdir / 'chat.db'}", IEUM_REDIS_URL=REDIS_URL, IEUM_REDIS_PREFIX=prefix
    )
    proc = ServerProcess(cli, workdir / "server.log", extra_env=SERVER_ENV)
    proc.start(["--workers", "2"])
    try:
        yield proc
    finally:
        try:
            proc.stop()
        finally:
            delete_prefix(prefix)


@pytest.fixture
def couple(server: ServerProcess) -> Couple:
    return server.cli.seed(1)[0]


def worker_of(client: StompTestClient) -> Worker:
    assert client.connected_frame is not None
    found = _WORKER.search(client.connected_frame.get("server") or "")
    assert found is not None, client.connected_frame
    return int(found[1]), int(found[2])


async def connect_to(
    server: ServerProcess, token: str, want: Any = lambda w: True
) -> tuple[StompTestClient, Worker]:
    """Connect until the kernel hands the connection to a worker ``want`` accepts."""
    for _ in range(LANDING_TRIES):
        client = await StompTestClient.connected(server.ws_url, token)
        worker = worker_of(client)
        if want(worker):
            return client, worker
        await client.close()
    raise AssertionError(f"no worker as wanted in {LANDING_TRIES} connections")


async def test_a_chat_across_two_workers(server: ServerProcess, couple: Couple) -> None:
    a, (wa, _) = await connect_to(server, couple["ta"])
    b, (wb, _) = await connect_to(server, couple["tb"], lambda w: w[0] != wa)
    assert wa != wb
    topic, dest = f"/topic/couple/{couple['couple']}", f"/app/chat/{couple['couple']}"
    for client in (a, b):
        await client.subscribe(topic, {"x-resume-after-seq": "0"})
    for i in range(3):
        await a.send("SEND", {"destination": dest, "receipt": f"s{i}"}, text(f"m{i}"))
    got = await a.receipt("s2", timeout=10)
    got += [await a.expect_message(timeout=10) for _ in range(3 - len(got))]
    assert [m["seq"] for m in got] == [1, 2, 3]
    seen = [await b.expect_message(timeout=10) for _ in range(3)]
    assert [(m["seq"], m["content"]) for m in seen] == [(1, "m0"), (2, "m1"), (3, "m2")]
    # b reads on worker wb; a, on the other worker, hears of it once.
    await b.send("SEND", {"destination": f"{dest}/read", "receipt": "rr"}, {"upToSeq": 3})
    receipt = await a.expect_message(timeout=10)
    assert (receipt["type"], receipt["readerId"], receipt["seqs"]) == (
        "READ_RECEIPT",
        couple["b"],
        [1, 2, 3],
    )
    assert receipt["seq"] == 4
    mine = await b.receipt("rr", timeout=10)
    if not mine:
        mine = [await b.expect_message(timeout=10)]
    assert [m["seq"] for m in mine] == [4]
    await a.assert_silent(0.5)
    await b.assert_silent(0.5)
    await a.close()
    await b.close()


async def test_both_members_sending_at_once_through_two_workers(
    server: ServerProcess, couple: Couple
) -> None:
    """Two worker processes commit messages of one couple into one SQLite file at the same
    time: seqs are unique and gap-free, and both members get every one once, in order."""
    a, (wa, _) = await connect_to(server, couple["ta"])
    b, _ = await connect_to(server, couple["tb"], lambda w: w[0] != wa)
    await both_send_at_once(a, b, couple["couple"])
    await a.close()
    await b.close()


def scrape(server: ServerProcess, name: str) -> float:
    """One sample of ``name`` from /metrics (a new connection: any worker may answer)."""
    with httpx.Client(timeout=5) as http:
        body = http.get(f"{server.http_url}/metrics").text
    for line in body.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def settled(server: ServerProcess, name: str, value: float, scrapes: int = 6) -> None:
    """Until ``scrapes`` scrapes in a row answer ``value`` (each worker writes its share down
    every second; a scrape answers from whichever worker the kernel picks)."""
    async with asyncio.timeout(GUARD):
        streak = 0
        while streak < scrapes:
            streak = streak + 1 if scrape(server, name) == value else 0
            await asyncio.sleep(0.05 if streak else 0.3)


async def steady(server: ServerProcess, name: str) -> float:
    """``name`` once every worker has written its share down: two scrapes, a sample interval
    and a half apart, that agree (any worker answers with every worker's values)."""
    async with asyncio.timeout(GUARD):
        last = scrape(server, name)
        while True:
            await asyncio.sleep(1.5 * metrics.SAMPLE_INTERVAL)
            now = scrape(server, name)
            if now == last:
                return now
            last = now


async def test_metrics_add_up_over_the_workers(server: ServerProcess, couple: Couple) -> None:
    await settled(server, "ieum_stomp_sessions", 0)
    clients = []
    workers: dict[int, int] = {}
    for i in range(4):
        # Two sessions on each worker.
        def wanted(w: Worker) -> bool:
            return workers.get(w[0], 0) < 2

        client, worker = await connect_to(server, couple["ta" if i % 2 else "tb"], wanted)
        workers[worker[0]] = workers.get(worker[0], 0) + 1
        clients.append(client)
    assert sorted(workers.values()) == [2, 2]
    await settled(server, "ieum_stomp_sessions", 4)
    stored = await steady(server, "ieum_messages_stored_total")
    dest = f"/app/chat/{couple['couple']}"
    for i, client in enumerate(clients):
        await client.send("SEND", {"destination": dest, "receipt": "r"}, text(f"n{i}"))
        await client.receipt("r", timeout=10)
    # Counters of both workers add up too, whichever worker answers (the message path counts
    # in tallies, which each worker adds to the metrics every second).
    await settled(server, "ieum_messages_stored_total", stored + 4)
    for client in clients[:3]:
        await client.close()
    await settled(server, "ieum_stomp_sessions", 1)
    await clients[3].close()
    await settled(server, "ieum_stomp_sessions", 0)


def supervisor_log(server: ServerProcess, since: int) -> str:
    return server.log_text()[since:]


async def until(predicate: Callable[[], bool]) -> None:
    """Until ``predicate()`` holds (GUARD seconds at most: a failure guard)."""
    async with asyncio.timeout(GUARD):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.05)


async def wait_for_log(server: ServerProcess, since: int, line: str) -> None:
    await until(lambda: line in supervisor_log(server, since))


async def test_sighup_replaces_every_worker_and_loses_no_message(
    server: ServerProcess, couple: Couple
) -> None:
    """While a client keeps sending (reconnecting when its worker is replaced) and another
    keeps opening connections, SIGHUP replaces both workers one at a time: every connection
    is accepted, every RECEIPTed message is stored once."""
    dest = f"/app/chat/{couple['couple']}"
    done = asyncio.Event()
    receipted: list[str] = []
    sessions: list[Worker] = []
    refused: list[str] = []
    errors: list[str] = []

    async def sender() -> None:
        pending: str | None = None
        n = 0
        while True:
            try:
                client = await StompTestClient.connected(server.ws_url, couple["ta"])
            except (OSError, ConnectionClosed, InvalidStatus) as exc:
                refused.append(f"STOMP connect: {exc!r}")
                await asyncio.sleep(0.05)
                continue
            sessions.append(worker_of(client))
            try:
                while True:
                    if pending is None:
                        if done.is_set():
                            await client.close()
                            return
                        n += 1
                        pending = f"roll-{n}"
                    # Resent after a reconnect with the same tempId: stored once.
                    await client.send(
                        "SEND", {"destination": dest, "receipt": pending}, text(pending, pending)
                    )
                    frame = await client.next_frame(timeout=10)
                    if frame.command == "ERROR":
                        errors.append(frame.get("message") or "")
                        break  # the worker is being replaced: reconnect
                    assert (frame.command, frame.get("receipt-id")) == ("RECEIPT", pending)
                    receipted.append(pending)
                    pending = None
            except ConnectionClosed:
                pass  # the worker closed after its ERROR, or before we read it

    async def prober() -> int:
        probes = 0
        async with httpx.AsyncClient(
            timeout=5, limits=httpx.Limits(max_keepalive_connections=0)
        ) as http:
            while not done.is_set():
                try:
                    response = await http.get(f"{server.http_url}/healthz")
                    if response.status_code != 200:
                        refused.append(f"healthz {response.status_code}")
                except httpx.HTTPError as exc:
                    refused.append(f"healthz: {exc!r}")
                probes += 1
                await asyncio.sleep(0.02)
        return probes

    before = await both_workers(server, couple)
    mark = len(server.log_text())
    sending, probing = asyncio.create_task(sender()), asyncio.create_task(prober())
    await until(lambda: len(receipted) >= 20)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGHUP)
    await wait_for_log(server, mark, "rolling restart done")
    count = len(receipted)
    await until(lambda: len(receipted) >= count + 20)
    done.set()
    await sending
    probes = await probing
    assert refused == []
    assert probes > 0
    assert set(errors) <= {"SERVER_SHUTDOWN"}
    after = await both_workers(server, couple)
    assert {i for i, _ in after} == {0, 1}
    assert not {pid for _, pid in before} & {pid for _, pid in after}  # both replaced
    assert {pid for _, pid in sessions} & {pid for _, pid in after}  # it reached a new one
    # Every RECEIPTed message is in the couple's stream once, in order.
    reader = await StompTestClient.connected(server.ws_url, couple["tb"])
    await reader.subscribe(f"/topic/couple/{couple['couple']}", {"x-resume-after-seq": "0"})
    stream = [await reader.expect_message(timeout=10) for _ in range(len(receipted))]
    await reader.assert_silent(0.5)
    assert [m["seq"] for m in stream] == list(range(1, len(receipted) + 1))
    assert [m["tempId"] for m in stream] == receipted
    await reader.close()


async def both_workers(server: ServerProcess, couple: Couple) -> set[Worker]:
    """The two workers serving now, each seen through a connection of its own."""
    first, w1 = await connect_to(server, couple["ta"])
    second, w2 = await connect_to(server, couple["ta"], lambda w: w[0] != w1[0])
    await first.close()
    await second.close()
    return {w1, w2}


async def test_a_killed_worker_is_replaced(server: ServerProcess, couple: Couple) -> None:
    victim, (index, pid) = await connect_to(server, couple["ta"])
    mark = len(server.log_text())
    os.kill(pid, signal.SIGKILL)
    assert await victim.closed(timeout=10)
    await wait_for_log(server, mark, f"worker {index} (pid {pid}) died")
    client, (_, new_pid) = await connect_to_guarded(server, couple["ta"], index)
    assert new_pid != pid
    # The replacement serves: a message through it gets its RECEIPT.
    dest = f"/app/chat/{couple['couple']}"
    await client.send("SEND", {"destination": dest, "receipt": "k"}, text("after the kill"))
    await client.receipt("k", timeout=10)
    await client.close()


async def connect_to_guarded(
    server: ServerProcess, token: str, index: int
) -> tuple[StompTestClient, Worker]:
    """Connect until worker ``index`` answers (its replacement may still be starting)."""
    async with asyncio.timeout(GUARD):
        while True:
            try:
                return await connect_to(server, token, lambda w: w[0] == index)
            except AssertionError:
                await asyncio.sleep(0.2)


async def test_sigterm_drains_every_worker(tmp_path: Path) -> None:
    require_redis()
    prefix = unique_prefix()
    cli = Cli.for_database(
        f"sqlite:///{tmp_path / 'chat.db'}", IEUM_REDIS_URL=REDIS_URL, IEUM_REDIS_PREFIX=prefix
    )
    node = ServerProcess(cli, tmp_path / "server.log", extra_env=SERVER_ENV)
    node.start(["--workers", "2"])
    try:
        pair = cli.seed(1)[0]
        a, (wa, _) = await connect_to(node, pair["ta"])
        b, _ = await connect_to(node, pair["tb"], lambda w: w[0] != wa)
        assert node.proc is not None
        node.proc.send_signal(signal.SIGTERM)
        for client in (a, b):  # one on each worker: both drain as a single server does
            error = await client.expect("ERROR", timeout=20)
            assert error.get("message") == "SERVER_SHUTDOWN"
            assert await client.closed(timeout=10)
        assert node.proc.wait(timeout=30) == 0
        log = node.log_text()
        assert sorted(re.findall(r"worker (\d) \(pid \d+\) stopped", log)) == ["0", "1"]
    finally:
        try:
            node.stop()
        finally:
            delete_prefix(prefix)


def test_workers_that_cannot_listen_end_the_supervisor(tmp_path: Path) -> None:
    """A port held by a socket without SO_REUSEPORT: no worker can bind it, and the
    supervisor exits instead of restarting them for ever."""
    require_redis()
    prefix = unique_prefix()
    cli = Cli.for_database(
        f"sqlite:///{tmp_path / 'chat.db'}", IEUM_REDIS_URL=REDIS_URL, IEUM_REDIS_PREFIX=prefix
    )
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        try:
            proc = cli.run("serve", "--workers", "2", "--port", str(port), check=False)
        finally:
            delete_prefix(prefix)
    assert proc.returncode == 1
    for index in (0, 1):
        assert f"worker {index} cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "did not start; stopping" in proc.stderr


def test_several_workers_without_redis_are_refused(tmp_path: Path) -> None:
    cli = Cli.for_database(f"sqlite:///{tmp_path / 'chat.db'}")
    cli.env.pop("IEUM_REDIS_URL", None)
    proc = cli.run("serve", "--workers", "2", "--port", "1", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "ieum-chat: error: IEUM_WORKERS=2 needs IEUM_REDIS_URL: the in-process broker cannot "
        "carry messages, presence and typing between worker processes"
    ]
