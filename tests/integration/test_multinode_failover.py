"""A node of three dies (SIGKILL: no drain, no goodbye to Redis) behind real nginx: its
clients reconnect through nginx to a live node and resume by seq with nothing lost, and its
users' sessions expire once, after the presence TTL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fixtures import SERVER_ENV
from tests.support.nginx import Cluster, running_cluster
from tests.support.stomp_client import StompTestClient

pytestmark = pytest.mark.postgres

Couple = dict[str, str]
RESUME_ALL = {"x-resume-after-seq": "0"}  # fresh couples: everything from now on
TTL = 1.5


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir: Path = tmp_path_factory.mktemp("failover")
    with running_cluster(workdir, env={**SERVER_ENV, "IEUM_PRESENCE_TTL": str(TTL)}) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def couples(cluster: Cluster) -> Iterator[Couple]:
    return iter(cluster.cli.seed(10))


@pytest.fixture
def couple(couples: Iterator[Couple]) -> Couple:
    return next(couples)


def text(content: str) -> dict[str, Any]:
    return {"type": "TEXT", "content": content, "tempId": uuid.uuid4().hex}


async def through(client: StompTestClient, receipt: str, seq: int) -> list[int]:
    """The seqs a sender sees up to ``seq``: its RECEIPT and the broadcast of its own
    message come in either order."""
    seen = await client.receipt(receipt)
    while not seen or seen[-1].get("seq") != seq:
        seen.append(await client.expect_message())
    return [m["seq"] for m in seen]


async def test_a_killed_nodes_clients_reconnect_elsewhere_and_resume(
    cluster: Cluster, couple: Couple
) -> None:
    a, node_a = await cluster.connect(couple["ta"])
    b, node_b = await cluster.connect(couple["tb"], avoid={node_a})
    topic = f"/topic/couple/{couple['couple']}"
    dest = f"/app/chat/{couple['couple']}"
    for client in (a, b):
        await client.subscribe(topic, RESUME_ALL)
    for i in range(1, 6):
        await a.send("SEND", {"destination": dest, "receipt": f"r{i}"}, text(f"m{i}"))
    assert await through(a, "r5", 5) == [1, 2, 3, 4, 5]
    assert [(await b.expect_message())["seq"] for _ in range(5)] == [1, 2, 3, 4, 5]

    cluster.kill(node_b)
    assert await b.closed(timeout=5)  # nginx closes the client side of a dead upstream
    for i in range(6, 11):  # the partner keeps writing meanwhile
        await a.send("SEND", {"destination": dest, "receipt": f"r{i}"}, text(f"m{i}"))
    assert await through(a, "r10", 10) == [6, 7, 8, 9, 10]

    # Reconnect through nginx: the dead node refuses, nginx passes to a live one.
    b, node_b2 = await cluster.connect(couple["tb"])
    assert node_b2 != node_b
    await b.subscribe(topic, {"x-resume-after-seq": "5"})
    resumed = [await b.expect_message() for _ in range(5)]
    assert [m["seq"] for m in resumed] == [6, 7, 8, 9, 10]
    assert [m["content"] for m in resumed] == [f"m{i}" for i in range(6, 11)]
    await a.send("SEND", {"destination": dest}, text("live again"))
    live = await b.expect_message()
    assert (live["seq"], live["content"]) == (11, "live again")
    await b.send("SEND", {"destination": dest, "receipt": "rb"}, text("from b"))
    assert await through(b, "rb", 12) == [12]
    seen = await a.messages_until(lambda m: m.get("content") == "from b")
    assert [m["seq"] for m in seen] == [11, 12]

    # b's session on the dead node expires, but b is online elsewhere: no flicker for a.
    a.ignore_presence = False
    await a.assert_silent(3 * TTL)
    await b.assert_silent(0.2)
    await a.close()
    await b.close()
    cluster.restart(node_b)


async def test_a_killed_nodes_users_go_offline_once_after_the_ttl(
    cluster: Cluster, couple: Couple
) -> None:
    b, node_b = await cluster.connect(couple["tb"])
    b.ignore_presence = False
    await b.subscribe(f"/topic/couple/{couple['couple']}", RESUME_ALL)
    a, node_a = await cluster.connect(couple["ta"], avoid={node_b})
    event = await b.expect_message()
    assert (event["event"], event["userId"]) == ("USER_CONNECTED", couple["a"])
    cluster.kill(node_a)
    event = await b.expect_message(timeout=4 * TTL + 5)
    assert (event["event"], event["userId"]) == ("USER_DISCONNECTED", couple["a"])
    await b.assert_silent(2 * TTL)  # once, though two nodes sweep
    await b.close()
    await a.close()
    cluster.restart(node_a)
