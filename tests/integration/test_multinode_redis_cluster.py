"""Two ``ieum-chat serve`` nodes on a Redis Cluster of their own (three masters, three
replicas): fan-out on sharded Pub/Sub and presence work across nodes, and when the master
that carries a couple's channel is killed mid-traffic, its replica takes over and no message
that got a RECEIPT is lost: every member catches up by seq, and live traffic flows again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.chat import text
from tests.support.fixtures import SERVER_ENV
from tests.support.nginx import Cluster, running_cluster
from tests.support.redis_cluster import RedisClusterServer, running_redis_cluster
from tests.support.stomp_client import StompTestClient, frame_json

pytestmark = pytest.mark.postgres

RESUME_ALL = {"x-resume-after-seq": "0"}


@pytest.fixture(scope="module")
def redis_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServer]:
    """A cluster of this module's own: a test here kills one of its masters."""
    with running_redis_cluster(tmp_path_factory.mktemp("redis-cluster-nodes")) as server:
        yield server


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, redis_nodes: RedisClusterServer
) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("multinode-redis-cluster")
    env = {**SERVER_ENV, "IEUM_REDIS_URL": redis_nodes.url}
    with running_cluster(workdir, size=2, env=env) as cluster:
        yield cluster


async def test_members_on_two_nodes_chat_and_see_each_other_online(cluster: Cluster) -> None:
    couple = cluster.cli.seed(1)[0]
    topic = f"/topic/couple/{couple['couple']}"
    dest = f"/app/chat/{couple['couple']}"
    b = await StompTestClient.connected(cluster.nodes[1].ws_url, couple["tb"])
    b.ignore_presence = False
    await b.subscribe(topic, RESUME_ALL)
    a = await StompTestClient.connected(cluster.nodes[0].ws_url, couple["ta"])
    event = await b.expect_message(timeout=10)
    assert (event["event"], event["userId"]) == ("USER_CONNECTED", couple["a"])
    await a.subscribe(topic, RESUME_ALL)
    await a.send("SEND", {"destination": dest, "receipt": "r1"}, text("hello"))
    got = await b.expect_message(timeout=10)
    assert (got["seq"], got["content"]) == (1, "hello")
    # A second session of a on the other node: online already, nothing announced.
    a_too = await StompTestClient.connected(cluster.nodes[1].ws_url, couple["ta"])
    await b.assert_silent(0.5)
    await a.close()
    await b.assert_silent(0.5)
    await a_too.close()
    event = await b.expect_message(timeout=10)
    assert (event["event"], event["userId"]) == ("USER_DISCONNECTED", couple["a"])
    await b.close()


class Member:
    """A client whose frames are read by a task of its own, so that it can send with
    receipts while messages arrive: it records every MESSAGE and every RECEIPT."""

    def __init__(self, client: StompTestClient, dest: str, name: str) -> None:
        self.client = client
        self.dest = dest
        self.name = name
        self.messages: list[dict[str, Any]] = []
        self.receipted: list[str] = []  # contents of this member's sends that got a RECEIPT
        self._receipts: set[str] = set()
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            try:
                frame = await self.client.next_frame(timeout=3600)
            except TimeoutError:
                continue
            if frame.command == "RECEIPT":
                self._receipts.add(frame.get("receipt-id") or "")
            elif frame.command == "MESSAGE":
                self.messages.append(frame_json(frame))
            else:
                raise AssertionError(f"unexpected {frame}")
            self._changed.set()

    async def wait(self, predicate: Any, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                if self._reader.done():
                    self._reader.result()
                await self._changed.wait()

    async def say(self, content: str, timeout: float = 15.0) -> None:
        receipt = f"r-{content}"
        # Bounded like every wait here: a write that a node stops reading fails the test
        # where it waits, instead of holding it until the suite's timeout.
        await asyncio.wait_for(
            self.client.send("SEND", {"destination": self.dest, "receipt": receipt}, text(content)),
            timeout,
        )
        await self.wait(lambda: receipt in self._receipts, timeout)
        self.receipted.append(content)

    def contents(self) -> list[str]:
        return [m["content"] for m in self.messages if "content" in m]

    def seqs(self) -> list[int]:
        return [m["seq"] for m in self.messages if "seq" in m]

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
        await self.client.close()


async def test_a_master_killed_mid_traffic_loses_no_receipted_message(
    cluster: Cluster, redis_nodes: RedisClusterServer
) -> None:
    couple = cluster.cli.seed(1)[0]
    topic = f"/topic/couple/{couple['couple']}"
    dest = f"/app/chat/{couple['couple']}"
    members: list[Member] = []
    for node, token, name in ((0, couple["ta"], "a"), (1, couple["tb"], "b")):
        client = await StompTestClient.connected(cluster.nodes[node].ws_url, token)
        await client.subscribe(topic, RESUME_ALL)
        members.append(Member(client, dest, name))
    a, b = members
    try:
        await a.say("a0")
        await b.wait(lambda: "a0" in b.contents(), 10)  # live across nodes
        channel = f"{cluster.prefix}couple:{couple['couple']}"
        master = redis_nodes.master_of(channel)

        async def chat(member: Member, first: int, count: int) -> None:
            for i in range(first, first + count):
                await member.say(f"{member.name}{i}")
                await asyncio.sleep(0.1)  # spread the traffic over the failover

        traffic = [asyncio.create_task(chat(m, 1, 30)) for m in members]
        await a.wait(lambda: len(a.receipted) >= 5, 15)
        await asyncio.to_thread(redis_nodes.kill, master)
        promoted = await asyncio.to_thread(redis_nodes.wait_promoted, master, channel)
        assert promoted != master
        await asyncio.gather(*traffic)
        sent = a.receipted + b.receipted
        # Whatever crossed no node while the shard was down is caught up from the database.
        for member in members:
            await member.wait(lambda m=member: set(sent) <= set(m.contents()), 30)
        # Then new messages cross live, both ways, through the promoted master.
        await a.say("a-after")
        await b.wait(lambda: "a-after" in b.contents(), 15)
        await b.say("b-after")
        await a.wait(lambda: "b-after" in a.contents(), 15)
        everything = len(sent) + 2  # what was sent (a0 included), a-after and b-after
        for member in members:
            # A member's own copy may come later than its partner's: a subscription that
            # is catching up (the broker told the node it reconnected) holds live messages
            # until its read of the database is done.
            await member.wait(lambda m=member: len(m.seqs()) >= everything, 15)
            # Each message once, in seq order, none missing in between.
            assert member.seqs() == list(range(1, everything + 1))
            assert sorted(member.contents()) == sorted([*sent, "a-after", "b-after"])
    finally:
        for member in members:
            await member.close()
