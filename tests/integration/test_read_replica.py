"""History and resume reads on a PostgreSQL streaming replica (``IEUM_DATABASE_REPLICA_URL``),
and back on the primary whenever the replica has not replayed what a read needs, or is down.

The server runs on a primary and replica of the tests' own (``tests/support/replica.py``);
``ieum_replica_reads_total`` on ``/metrics`` says which database answered each read and why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fixtures import SERVER_ENV
from tests.support.replica import Cluster, require_binaries
from tests.support.server import Cli, ServerProcess
from tests.support.stomp_client import StompTestClient

Couple = dict[str, str]
Reads = dict[tuple[str, str], float]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    require_binaries()
    made = Cluster()
    try:
        yield made.start()
    finally:
        made.stop()


@pytest.fixture(scope="module")
def replica_cli(cluster: Cluster) -> Cli:
    tool = Cli.for_database(
        cluster.primary_url, IEUM_DATABASE_REPLICA_URL=cluster.replica_url, **SERVER_ENV
    )
    tool.run("migrate")
    return tool


@pytest.fixture(scope="module")
def replica_server(
    replica_cli: Cli, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log_path: Path = tmp_path_factory.mktemp("log") / "server.log"
    uploads = tmp_path_factory.mktemp("uploads")
    proc = ServerProcess(replica_cli, log_path, extra_env={"IEUM_UPLOAD_DIR": str(uploads)})
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def couples(replica_cli: Cli) -> Iterator[Couple]:
    return iter(replica_cli.seed(8))


@pytest.fixture
def couple(couples: Iterator[Couple]) -> Couple:
    return next(couples)


@pytest.fixture
async def http(replica_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=replica_server.http_url, timeout=10) as client:
        yield client


async def replica_reads(http: httpx.AsyncClient) -> Reads:
    """``ieum_replica_reads_total`` by (target, reason)."""
    response = await http.get("/metrics")
    response.raise_for_status()
    counts: Reads = {}
    for family in text_string_to_metric_families(response.text):
        if family.name != "ieum_replica_reads":
            continue
        for sample in family.samples:
            if sample.name == "ieum_replica_reads_total":
                key = (sample.labels["target"], sample.labels["reason"])
                counts[key] = sample.value
    return counts


def added(before: Reads, after: Reads) -> Reads:
    """The counts that grew, by how much."""
    return {key: n - before.get(key, 0) for key, n in after.items() if n != before.get(key, 0)}


async def send_texts(server: ServerProcess, couple: Couple, contents: list[str]) -> None:
    """Send each as ``a`` and wait for its RECEIPT (stored on the primary)."""
    a = await StompTestClient.connected(server.ws_url, couple["ta"])
    try:
        dest = f"/app/chat/{couple['couple']}"
        for i, content in enumerate(contents):
            await a.send(
                "SEND",
                {"destination": dest, "receipt": f"r{i}"},
                {"type": "TEXT", "content": content},
            )
            await a.receipt(f"r{i}")
    finally:
        await a.close()


async def history(http: httpx.AsyncClient, couple: Couple, **params: Any) -> list[Any]:
    response = await http.get(
        f"/chat/rooms/{couple['couple']}/messages",
        params={"order": "asc", "limit": 100, **params},
        headers={"Authorization": f"Bearer {couple['tb']}"},
    )
    assert response.status_code == 200, response.text
    messages: list[Any] = response.json()["messages"]
    return messages


async def resume(server: ServerProcess, couple: Couple, after: int, count: int) -> list[Any]:
    """``b`` subscribes resuming after ``after``; the ``count`` messages replayed, then one
    sent live by ``a`` (to show nothing else was replayed, and the live seq follows)."""
    late = await StompTestClient.connected(server.ws_url, couple["tb"])
    try:
        await late.subscribe(
            f"/topic/couple/{couple['couple']}", {"x-resume-after-seq": str(after)}
        )
        replayed = [await late.expect_message() for _ in range(count)]
        await send_texts(server, couple, ["live"])
        live = await late.messages_until(lambda m: m.get("content") == "live")
        return replayed + live
    finally:
        await late.close()


async def test_history_is_read_from_the_replica(
    replica_server: ServerProcess, cluster: Cluster, http: httpx.AsyncClient, couple: Couple
) -> None:
    await send_texts(replica_server, couple, [f"m{i}" for i in range(5)])
    await cluster.wait_replayed()
    before = await replica_reads(http)
    page = await history(http, couple)
    assert [m["content"] for m in page] == [f"m{i}" for i in range(5)]
    assert [m["seq"] for m in page] == [1, 2, 3, 4, 5]
    assert added(before, await replica_reads(http)) == {("replica", "caught_up"): 1}


async def test_resume_is_read_from_the_replica(
    replica_server: ServerProcess, cluster: Cluster, http: httpx.AsyncClient, couple: Couple
) -> None:
    await send_texts(replica_server, couple, [f"m{i}" for i in range(5)])
    await cluster.wait_replayed()
    before = await replica_reads(http)
    got = await resume(replica_server, couple, after=2, count=3)
    assert [m["seq"] for m in got] == [3, 4, 5, 6]
    assert [m["content"] for m in got] == ["m2", "m3", "m4", "live"]
    assert added(before, await replica_reads(http)) == {("replica", "caught_up"): 1}


async def test_a_paused_replica_sends_reads_to_the_primary_without_gap_or_duplicate(
    replica_server: ServerProcess, cluster: Cluster, http: httpx.AsyncClient, couple: Couple
) -> None:
    await send_texts(replica_server, couple, [f"old{i}" for i in range(3)])
    await cluster.wait_replayed()
    await cluster.pause_replay()
    try:
        # Committed on the primary, not replayed on the replica.
        await send_texts(replica_server, couple, [f"new{i}" for i in range(6)])
        before = await replica_reads(http)
        # A device that saw seq 5 (new1) resumes: everything after it, once each.
        got = await resume(replica_server, couple, after=5, count=4)
        assert [m["seq"] for m in got] == [6, 7, 8, 9, 10]
        assert [m["content"] for m in got] == ["new2", "new3", "new4", "new5", "live"]
        page = await history(http, couple, after=2)
        assert [m["seq"] for m in page] == [3, 4, 5, 6, 7, 8, 9, 10]
        reads = added(before, await replica_reads(http))
        assert reads == {("primary", "lagging"): 2}
    finally:
        await cluster.resume_replay()
    await cluster.wait_replayed()
    before = await replica_reads(http)
    page = await history(http, couple)
    assert [m["seq"] for m in page] == list(range(1, 11))
    assert added(before, await replica_reads(http)) == {("replica", "caught_up"): 1}


async def test_a_replica_that_is_down_sends_reads_to_the_primary(
    replica_server: ServerProcess, cluster: Cluster, http: httpx.AsyncClient, couple: Couple
) -> None:
    await send_texts(replica_server, couple, [f"m{i}" for i in range(4)])
    cluster.stop_server(cluster.replica_dir)
    try:
        before = await replica_reads(http)
        page = await history(http, couple)
        assert [m["content"] for m in page] == [f"m{i}" for i in range(4)]
        got = await resume(replica_server, couple, after=1, count=3)
        assert [m["seq"] for m in got] == [2, 3, 4, 5]
        reads = added(before, await replica_reads(http))
        assert reads == {("primary", "unavailable"): 2}
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
    finally:
        cluster.start_server(cluster.replica_dir)
        await cluster.wait_streaming()
        await cluster.wait_replayed()
        await until_the_replica_serves(http, couple)


async def until_the_replica_serves(http: httpx.AsyncClient, couple: Couple) -> None:
    """Read history until a read is the replica's again (the server skips a replica it
    could not reach for a while), so the tests after this one find it in use."""
    deadline = time.monotonic() + 60
    while True:
        before = await replica_reads(http)
        await history(http, couple)
        if ("replica", "caught_up") in added(before, await replica_reads(http)):
            return
        assert time.monotonic() < deadline, "the server never read the restarted replica"
        await asyncio.sleep(0.2)


async def test_a_replica_of_sqlite_is_refused(tmp_path: Path) -> None:
    cli = Cli.for_database(
        f"sqlite:///{tmp_path / 'chat.db'}",
        IEUM_DATABASE_REPLICA_URL="postgresql://postgres@127.0.0.1:1/chat",
    )
    proc = cli.run("migrate", check=False)
    assert proc.returncode != 0
    assert "IEUM_DATABASE_REPLICA_URL needs a PostgreSQL primary" in proc.stderr


async def test_a_hide_the_replica_has_not_replayed_sends_reads_to_the_primary(
    replica_server: ServerProcess, cluster: Cluster, http: httpx.AsyncClient, couple: Couple
) -> None:
    # A hide takes no seq: the viewer's hide count tells a replica that lacks it.
    await send_texts(replica_server, couple, ["keep", "hide me", "keep too"])
    await cluster.wait_replayed()
    hidden = (await history(http, couple))[1]
    assert hidden["content"] == "hide me"
    await cluster.pause_replay()
    try:
        response = await http.delete(
            f"/chat/rooms/{couple['couple']}/messages/{hidden['id']}",
            headers={"Authorization": f"Bearer {couple['tb']}"},
        )
        assert response.status_code == 204, response.text
        before = await replica_reads(http)
        page = await history(http, couple)
        assert [m["content"] for m in page] == ["keep", "keep too"]
        # First the hide made since the resume point (no seq), then the stream as b sees
        # it: the hidden message's MESSAGE_DELETED in its place.
        got = await resume(replica_server, couple, after=0, count=4)
        assert [m.get("seq") for m in got] == [None, 1, 2, 3, 4]
        assert [m.get("content") for m in got] == [None, "keep", None, "keep too", "live"]
        assert [m.get("type") for m in got[:3]] == ["MESSAGE_DELETED", "TEXT", "MESSAGE_DELETED"]
        assert got[0]["messageId"] == got[2]["messageId"] == hidden["id"]
        assert added(before, await replica_reads(http)) == {("primary", "lagging"): 2}
    finally:
        await cluster.resume_replay()
