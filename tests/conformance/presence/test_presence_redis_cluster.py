"""Presence on a Redis Cluster when nodes die or stall and keys vanish: each user's counts are
a hash of their own (hash-tagged by the user, so users spread over the shards), a dead node's
users go offline once, a node swept while alive comes back under a new instance, and a late
command of a swept instance is refused rather than counted where nobody would remove it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.support.redis import unique_prefix
from tests.support.redis_cluster import RedisClusterServer
from tests.support.teardown import bounded_teardown

from ieum_chat.broker.redis_cluster_presence import ClusterPresence

TTL = 0.6  # heart-beat every 0.2 s; a dead node is swept within about a second


async def eventually(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


class Nodes:
    def __init__(self, server: RedisClusterServer) -> None:
        self.server = server
        self.prefix = unique_prefix()
        self.nodes: list[ClusterPresence] = []
        self.reported: list[tuple[str, uuid.UUID, bool]] = []

    async def add(self, name: str) -> ClusterPresence:
        node = ClusterPresence(self.server.url, prefix=self.prefix, ttl=TTL, node_id=name)

        async def record(user_id: uuid.UUID, online: bool) -> None:
            self.reported.append((name, user_id, online))

        node.set_transition_handler(record)
        await node.start()
        self.nodes.append(node)
        return node

    async def crash(self, node: ClusterPresence) -> None:
        """Stop heart-beating without leaving, like a killed process."""
        await self.stall(node)
        await node._client.aclose()
        self.nodes.remove(node)

    async def stall(self, node: ClusterPresence) -> None:
        assert node._task is not None
        node._task.cancel()
        await asyncio.gather(node._task, return_exceptions=True)
        node._task = None

    def events(self, user: uuid.UUID) -> list[tuple[str, bool]]:
        return [(name, online) for name, u, online in self.reported if u == user]

    async def close(self) -> None:
        for node in self.nodes:
            await node.close()


@pytest.fixture
async def nodes(redis_cluster: RedisClusterServer) -> AsyncIterator[Nodes]:
    group = Nodes(redis_cluster)
    try:
        yield group
    finally:
        try:
            await bounded_teardown("nodes", group.close())
        finally:
            redis_cluster.delete_prefix(group.prefix)


async def test_users_are_spread_over_every_master(
    nodes: Nodes, redis_cluster: RedisClusterServer
) -> None:
    node = await nodes.add("a")
    users = [uuid.uuid4() for _ in range(24)]
    for user in users:
        assert await node.opened(user)
    masters = {redis_cluster.master_of(node._user(str(user))) for user in users}
    assert len(masters) == 3
    assert all([await node.online(user) for user in users])


async def test_a_dead_nodes_users_go_offline_once(nodes: Nodes) -> None:
    dying = await nodes.add("dying")
    survivors = [await nodes.add("b"), await nodes.add("c")]
    only_there, also_here = uuid.uuid4(), uuid.uuid4()
    assert await dying.opened(only_there)
    assert await dying.opened(also_here)
    assert not await survivors[0].opened(also_here)
    await nodes.crash(dying)
    await eventually(lambda: nodes.events(only_there) != [])
    await asyncio.sleep(3 * TTL)  # every survivor has swept by now
    events = nodes.events(only_there)
    assert len(events) == 1
    assert events[0][0] in ("b", "c")
    assert events[0][1] is False
    assert nodes.events(also_here) == []  # still online on b: no flicker
    assert await survivors[1].online(also_here)
    assert not await survivors[1].online(only_there)
    assert await survivors[0].closed(also_here) is True  # its last session, counted once


async def test_a_node_swept_while_alive_comes_back_with_its_sessions(nodes: Nodes) -> None:
    stalled = await nodes.add("stalled")
    other = await nodes.add("other")
    user = uuid.uuid4()
    await stalled.opened(user)
    await nodes.stall(stalled)  # past the TTL: its liveness key expires, another sweeps
    await eventually(lambda: ("other", False) in nodes.events(user))
    # It wakes up: its heart-beat finds itself swept and re-asserts the session it still has.
    await stalled._tick()
    assert nodes.events(user) == [("other", False), ("stalled", True)]
    assert await other.online(user)
    assert await stalled.closed(user) is True
    assert nodes.events(user) == [("other", False), ("stalled", True)]


async def test_a_swept_nodes_late_open_is_refused_and_counted_anew(nodes: Nodes) -> None:
    stalled = await nodes.add("stalled")
    other = await nodes.add("other")
    first, late = uuid.uuid4(), uuid.uuid4()
    await stalled.opened(first)
    swept = stalled._instance
    await nodes.stall(stalled)
    await eventually(lambda: ("other", False) in nodes.events(first))
    # An open lands before the node's heart-beat noticed: the swept instance may count
    # nothing more, so the node re-asserts everything under a new one.
    assert await stalled.opened(late) is True
    assert stalled._instance != swept
    assert nodes.events(first) == [("other", False), ("stalled", True)]
    assert await other.online(late)
    assert await other.online(first)
    # Nothing is left under the swept instance: closing both takes both offline once.
    assert await stalled.closed(late) is True
    assert await stalled.closed(first) is True
    assert not await other.online(first)
    assert not await other.online(late)


async def test_keys_gone_under_the_nodes(nodes: Nodes) -> None:
    a, b = await nodes.add("a"), await nodes.add("b")
    user = uuid.uuid4()
    await a.opened(user)
    await b.opened(user)
    nodes.server.delete_prefix(nodes.prefix)  # a cluster restarted without persistence
    await eventually(lambda: len(nodes.events(user)) >= 1)
    await asyncio.sleep(3 * TTL)
    assert [online for _, online in nodes.events(user)] == [True]  # re-asserted once
    assert await a.closed(user) is False
    assert await b.closed(user) is True


async def test_leaving_removes_a_nodes_sessions_at_once(nodes: Nodes) -> None:
    leaving = await nodes.add("leaving")
    staying = await nodes.add("staying")
    user = uuid.uuid4()
    await leaving.opened(user)
    await leaving.close()
    nodes.nodes.remove(leaving)
    assert not await staying.online(user)
    assert nodes.events(user) == [("leaving", False)]
