"""Chaos: two SDK clients of one couple exchange 2 x 1500 messages while the server is
SIGKILLed and restarted, sessions are dropped and (PostgreSQL) the server's database
connections are cut. Afterwards every message is stored exactly once, with seqs 1..N, and
each client saw every message exactly once, in seq order.

The faults fire at fixed points of the run's progress (share of RECEIPTs received), so they
land mid-stream however fast the machine is. The counts are printed with the test's output.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from ieum_chat.client import Backoff, ChatClient, ChatMessage, SendError
from tests.support.fixtures import SERVER_ENV
from tests.support.postgres import (
    create_database,
    drop_database,
    postgres_address,
    require_postgres,
    through_port,
)
from tests.support.server import Cli, ServerProcess
from tests.support.tcp_proxy import ProxyFactory, TcpProxy

PER_CLIENT = 1500
TOTAL = 2 * PER_CLIENT
WINDOW = 100  # sends each client keeps in flight
RUN_DEADLINE = 50.0  # seconds, per backend

# (share of RECEIPTs received, fault). "cut-db" needs the proxy (PostgreSQL only).
FAULTS: list[tuple[float, str]] = [
    (0.08, "drop-a"),
    (0.15, "kill"),
    (0.28, "cut-db"),
    (0.40, "drop-both"),
    (0.50, "kill"),
    (0.62, "cut-db"),
    (0.75, "drop-b"),
    (0.85, "kill"),
]


@dataclass
class Backend:
    name: str
    cli: Cli
    direct_url: str
    server: ServerProcess
    proxy: TcpProxy | None = None


@dataclass
class Report:
    sent: int = 0
    send_frames: int = 0
    app_retries: int = 0
    stored: int = 0
    delivered: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    gaps: dict[str, int] = field(default_factory=dict)
    sdk: dict[str, dict[str, int]] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self, backend: str) -> str:
        return (
            f"chaos[{backend}]: sent={self.sent} stored={self.stored} "
            f"delivered={self.delivered} duplicates={self.duplicates} gaps={self.gaps} "
            f"send_frames={self.send_frames} app_retries={self.app_retries} "
            f"faults={','.join(self.faults)} seconds={self.seconds:.1f} sdk={self.sdk}"
        )


@pytest.fixture(params=["postgresql", "sqlite"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, tcp_proxy: ProxyFactory
) -> Iterator[Backend]:
    env = {**SERVER_ENV, "IEUM_LOG_LEVEL": "WARNING"}
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'chat.db'}"
        cli = Cli.for_database(url)
        cli.run("migrate")
        server = ServerProcess(cli, tmp_path / "server.log", extra_env=env)
        try:
            yield Backend("sqlite", cli, url, server.start())
        finally:
            server.stop()
        return
    require_postgres()
    url = create_database(prefix="ieum_chaos")
    proxy = tcp_proxy(*postgres_address())
    try:
        Cli.for_database(url).run("migrate")
        cli = Cli.for_database(through_port(url, proxy.port))
        server = ServerProcess(cli, tmp_path / "server.log", extra_env=env)
        try:
            yield Backend("postgresql", cli, url, server.start(), proxy)
        finally:
            server.stop()
    finally:
        drop_database(url)


def stored_rows(backend: Backend) -> list[tuple[int, str | None]]:
    """(seq, tempId) of every stored message, read straight from the database."""
    if backend.name == "sqlite":
        with sqlite3.connect(backend.direct_url.removeprefix("sqlite:///")) as db:
            return list(db.execute("SELECT seq, temp_id FROM messages ORDER BY seq"))

    async def query() -> list[tuple[int, str | None]]:
        conn = await asyncpg.connect(backend.direct_url)
        try:
            rows = await conn.fetch("SELECT seq, temp_id FROM messages ORDER BY seq")
        finally:
            await conn.close()
        return [(row["seq"], row["temp_id"]) for row in rows]

    return asyncio.run(query())


def sdk_client(backend: Backend, token: str, couple: str) -> ChatClient:
    return ChatClient(
        backend.server.ws_url,
        lambda: token,
        couple_id=couple,
        resume_after_seq=0,
        heartbeat=(1.0, 1.0),
        backoff=Backoff(0.05, 0.5),
        retry_backoff=Backoff(0.1, 1.0),
        max_send_retries=30,
        max_events=2000,
    )


async def send_all(client: ChatClient, who: str, report: Report) -> None:
    """The application: 1500 messages, WINDOW in flight; a transient SendError (the SDK's
    own retries exhausted) is retried here with the same tempId, as the SDK's policy says."""
    window = asyncio.Semaphore(WINDOW)

    async def one(i: int) -> None:
        async with window:
            for attempt in range(5):
                try:
                    await client.send_text(f"{who} {i}", temp_id=f"{who}-{i}")
                    return
                except SendError as exc:
                    if not exc.transient or attempt == 4:
                        raise
                    report.app_retries += 1
                    await asyncio.sleep(0.2)

    async with asyncio.TaskGroup() as group:
        for i in range(PER_CLIENT):
            group.create_task(one(i))


async def receive_all(client: ChatClient, seen: list[ChatMessage]) -> None:
    while len(seen) < TOTAL:
        event = await client.next_event()
        if isinstance(event, ChatMessage):
            seen.append(event)


async def inject_faults(
    backend: Backend, clients: dict[str, ChatClient], done: asyncio.Event, report: Report
) -> None:
    pending = [f for f in FAULTS if f[1] != "cut-db" or backend.proxy is not None]
    while pending and not done.is_set():
        progress = sum(c.stats.receipts for c in clients.values()) / TOTAL
        if progress < pending[0][0]:
            await asyncio.sleep(0.01)
            continue
        _, fault = pending.pop(0)
        report.faults.append(fault)
        if fault == "kill":
            await asyncio.to_thread(backend.server.stop, signal.SIGKILL)
            await asyncio.sleep(0.2)
            await asyncio.to_thread(backend.server.start)
        elif fault == "cut-db":
            assert backend.proxy is not None
            await asyncio.to_thread(backend.proxy.cut)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(backend.proxy.restore)
        else:
            for who in ("a", "b"):
                if fault in ("drop-both", f"drop-{who}"):
                    await clients[who].reconnect()


def check(name: str, seen: list[ChatMessage], report: Report) -> None:
    seqs = [m.seq for m in seen]
    counts = Counter(m.temp_id for m in seen)
    report.delivered[name] = len(seen)
    report.duplicates[name] = sum(n - 1 for n in counts.values() if n > 1) + sum(
        1 for x, y in itertools.pairwise(seqs) if y <= x
    )
    report.gaps[name] = sum(y - x - 1 for x, y in itertools.pairwise(seqs) if y > x + 1)


@pytest.mark.timeout(150)
async def test_chaos(backend: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    couple = backend.cli.seed(1)[0]
    report = Report()
    clients = {
        "a": sdk_client(backend, couple["ta"], couple["couple"]),
        "b": sdk_client(backend, couple["tb"], couple["couple"]),
    }
    seen: dict[str, list[ChatMessage]] = {"a": [], "b": []}
    done = asyncio.Event()
    started = time.monotonic()
    try:
        for client in clients.values():
            client.start()
        async with asyncio.timeout(10):
            for client in clients.values():
                await client.wait_ready()
        async with asyncio.timeout(RUN_DEADLINE):
            chaos = asyncio.create_task(inject_faults(backend, clients, done, report))
            try:
                async with asyncio.TaskGroup() as group:
                    for who, client in clients.items():
                        group.create_task(send_all(client, who, report))
                        group.create_task(receive_all(client, seen[who]))
            finally:
                done.set()
                await chaos
        report.seconds = time.monotonic() - started
        report.send_frames = sum(c.stats.receipts + c.stats.resent for c in clients.values())
        report.sdk = {
            who: {
                "connects": c.stats.connects,
                "resent": c.stats.resent,
                "retries": c.stats.retries,
                "dup_dropped": c.stats.duplicates_dropped,
                "gaps_resynced": c.stats.gaps,
                "overflows": c.stats.overflows,
            }
            for who, c in clients.items()
        }
    finally:
        for client in clients.values():
            await client.close()

    # A fresh client resuming from seq 0 replays the same history.
    fresh = sdk_client(backend, couple["tb"], couple["couple"])
    seen["fresh"] = []
    fresh.start()
    try:
        async with asyncio.timeout(20):
            await receive_all(fresh, seen["fresh"])
    finally:
        await fresh.close()

    # Every message the applications sent got its RECEIPT...
    report.sent = TOTAL
    # ...and is in the database exactly once, seqs 1..N with no gap.
    rows = await asyncio.to_thread(stored_rows, backend)
    report.stored = len(rows)
    for name, messages in seen.items():
        check(name, messages, report)
    with capsys.disabled():
        print("\n" + report.line(backend.name))

    expected = {f"{who}-{i}" for who in ("a", "b") for i in range(PER_CLIENT)}
    temp_ids = Counter(temp_id for _, temp_id in rows)
    assert set(temp_ids) == expected
    assert max(temp_ids.values()) == 1
    assert [seq for seq, _ in rows] == list(range(1, TOTAL + 1))
    assert report.faults, "no fault was injected"
    # Each client saw every message exactly once, in seq order, the same as stored.
    for messages in seen.values():
        assert [(m.seq, m.temp_id) for m in messages] == rows
    assert report.duplicates == {"a": 0, "b": 0, "fresh": 0}
    assert report.gaps == {"a": 0, "b": 0, "fresh": 0}
    assert "kill" in report.faults
    assert backend.proxy is None or "cut-db" in report.faults
