"""Presence on Redis and on a Redis Cluster when nodes die or stall and keys vanish: a dead
node's users go offline once (USER_DISCONNECTED reported by exactly one surviving node), a
node swept while alive, or whose keys are gone, re-asserts its sessions (USER_CONNECTED
reported once), and a node leaves within a bound whatever Redis does meanwhile.

Each scenario runs on both backends unless it can only be staged on one: a node cut off from
its one Redis by a proxy (Redis), users spread over the shards and a swept instance's late
command (the cluster's layout: each user's counts are a hash of their own, hash-tagged by the
user, counted under instances that a sweep marks dead)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from tests.support.polling import eventually
from tests.support.redis import unique_prefix
from tests.support.redis_backends import RedisBackend, on_backends
from tests.support.redis_cluster import RedisClusterServer
from tests.support.tcp_proxy import TcpProxy
from tests.support.teardown import bounded_teardown

from ieum_chat.broker.redis_cluster_presence import ClusterPresence
from ieum_chat.broker.redis_presence import RedisPresence

TTL = 0.6  # heart-beat every 0.2 s; a dead node is swept within about a second


class Nodes:
    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self.prefix = unique_prefix()
        self.nodes: list[RedisPresence] = []
        self.reported: list[tuple[str, uuid.UUID, bool]] = []

    async def add(self, name: str, url: str | None = None, ttl: float = TTL) -> RedisPresence:
        kind = RedisPresence if self.backend.cluster is None else ClusterPresence
        node = kind(url or self.backend.url, prefix=self.prefix, ttl=ttl, node_id=name)

        async def record(user_id: uuid.UUID, online: bool) -> None:
            self.reported.append((name, user_id, online))

        node.set_transition_handler(record)
        await node.start()
        self.nodes.append(node)
        return node

    async def stall(self, node: RedisPresence) -> None:
        """Stop heart-beating, keeping the sessions: past the TTL the node's liveness key
        expires and another node sweeps it."""
        assert node._task is not None
        node._task.cancel()
        await asyncio.gather(node._task, return_exceptions=True)
        node._task = None

    async def crash(self, node: RedisPresence) -> None:
        """Stop heart-beating without leaving, like a killed process."""
        await self.stall(node)
        await node._client.aclose()
        self.nodes.remove(node)

    def empty(self) -> None:
        """Every key of the nodes gone, as after a restart of Redis without persistence."""
        self.backend.delete_prefix(self.prefix)

    def events(self, user: uuid.UUID) -> list[tuple[str, bool]]:
        return [(name, online) for name, u, online in self.reported if u == user]

    async def close(self) -> None:
        for node in self.nodes:
            await node.close()


@pytest.fixture
async def nodes(redis_backend: RedisBackend) -> AsyncIterator[Nodes]:
    group = Nodes(redis_backend)
    try:
        yield group
    finally:
        try:
            await bounded_teardown("nodes", group.close())
        finally:
            group.empty()


async def test_a_dead_nodes_users_go_offline_once(nodes: Nodes) -> None:
    dying = await nodes.add("dying")
    survivors = [await nodes.add("b"), await nodes.add("c")]
    only_there, also_here = uuid.uuid4(), uuid.uuid4()
    assert await dying.opened(only_there)
    assert await dying.opened(also_here)
    assert not await survivors[0].opened(also_here)
    await nodes.crash(dying)
    await eventually(lambda: nodes.events(only_there) != [], timeout=5)
    await asyncio.sleep(3 * TTL)  # every survivor has swept by now
    events = nodes.events(only_there)
    assert len(events) == 1
    assert events[0][0] in ("b", "c")
    assert events[0][1] is False
    assert nodes.events(also_here) == []  # still online on b: no flicker
    assert await survivors[1].online(also_here)
    assert not await survivors[1].online(only_there)
    assert await survivors[0].closed(also_here) is True  # its last session, counted once


async def test_leaving_removes_a_nodes_sessions_at_once(nodes: Nodes) -> None:
    leaving = await nodes.add("leaving")
    staying = await nodes.add("staying")
    user = uuid.uuid4()
    await leaving.opened(user)
    await leaving.close()
    nodes.nodes.remove(leaving)
    assert not await staying.online(user)
    assert nodes.events(user) == [("leaving", False)]


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


async def test_keys_gone_under_the_nodes(nodes: Nodes) -> None:
    a, b = await nodes.add("a"), await nodes.add("b")
    user = uuid.uuid4()
    await a.opened(user)
    await b.opened(user)
    nodes.empty()
    await eventually(lambda: len(nodes.events(user)) >= 1)
    await asyncio.sleep(3 * TTL)
    assert [online for _, online in nodes.events(user)] == [True]  # re-asserted once
    assert await a.closed(user) is False
    assert await b.closed(user) is True


# A node leaves within this bound whatever Redis does meanwhile: every wait of close() has a
# deadline (the socket timeout of a command is 2 s).
CLOSE_BOUND = 6.0


async def _closes_in_time(node: RedisPresence) -> float:
    started = time.monotonic()
    done, _ = await asyncio.wait({asyncio.ensure_future(node.close())}, timeout=CLOSE_BOUND + 2)
    assert done, f"close() still waiting after {CLOSE_BOUND + 2} s"
    return time.monotonic() - started


async def test_closing_right_after_the_keys_are_gone(nodes: Nodes) -> None:
    for _ in range(5):
        a, b = await nodes.add("a"), await nodes.add("b")
        user = uuid.uuid4()
        await a.opened(user)
        await b.opened(user)
        nodes.empty()
        await asyncio.sleep(TTL / 3)  # a heart-beat is finding it out about now
        for node in (a, b):
            nodes.nodes.remove(node)
            assert await _closes_in_time(node) < CLOSE_BOUND


async def test_closing_while_heartbeats_are_in_flight(nodes: Nodes) -> None:
    """Heart-beats every 10 ms: close() cancels the heart-beat task in the middle of a
    command most of the time. A driver may lose that cancellation (redis-py does when the
    reply and the cancellation meet); the node must leave within its bound all the same."""
    for i in range(10):
        node = await nodes.add(f"busy-{i}", ttl=0.03)
        await node.opened(uuid.uuid4())
        await asyncio.sleep(0.05)
        nodes.nodes.remove(node)
        assert await _closes_in_time(node) < CLOSE_BOUND


# -- one Redis, cut off or stalled behind a proxy ------------------------------------------


@on_backends("redis")
async def test_closing_while_a_heartbeat_waits_on_a_stalled_redis(
    redis_proxy: TcpProxy,
    nodes: Nodes,  # this order: the nodes close before the proxy stops
) -> None:
    """The heart-beat task is cancelled in the middle of a command. A driver may lose that
    cancellation (redis-py does while a read waits under its socket timeout); the node
    must leave within its bound all the same."""
    node = await nodes.add("stalled", nodes.backend.url_via(redis_proxy))
    await node.opened(uuid.uuid4())
    redis_proxy.stall()
    await asyncio.sleep(TTL)  # the next heart-beat is now waiting for its reply
    nodes.nodes.remove(node)
    assert await _closes_in_time(node) < CLOSE_BOUND
    redis_proxy.flow()


@on_backends("redis")
async def test_sessions_counted_during_an_outage_are_asserted_after_it(
    redis_proxy: TcpProxy,
    nodes: Nodes,  # this order: the nodes close before the proxy stops
) -> None:
    cut_off = await nodes.add("cut-off", nodes.backend.url_via(redis_proxy))
    other = await nodes.add("other")
    came, went, both = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await cut_off.opened(went)
    redis_proxy.cut()
    assert await cut_off.opened(came) is False  # counted here; announced after the outage
    assert await cut_off.closed(went) is False
    assert await cut_off.opened(both) is False
    assert await cut_off.closed(both) is False
    assert cut_off.session_count(came) == 1
    assert await cut_off.online(came)  # its own view while Redis is away
    redis_proxy.restore()
    await eventually(lambda: ("cut-off", True) in nodes.events(came))
    await eventually(lambda: ("cut-off", False) in nodes.events(went))
    assert await other.online(came)
    assert not await other.online(went)
    await asyncio.sleep(2 * TTL)
    assert nodes.events(came) == [("cut-off", True)]
    assert nodes.events(went) == [("cut-off", False)]
    assert nodes.events(both) == []


async def test_a_node_started_while_redis_is_down_counts_then_asserts(
    redis_proxy: TcpProxy,
    nodes: Nodes,  # this order: the nodes close before the proxy stops
) -> None:
    """On a cluster only the discovery goes through the proxy: cut, the node has no slot map
    yet and the driver's own errors are what it meets."""
    redis_proxy.cut()
    late = await nodes.add("late", nodes.backend.url_via(redis_proxy))
    other = await nodes.add("other")
    user = uuid.uuid4()
    assert await late.opened(user) is False  # counted here; announced once Redis answers
    assert await late.online(user)
    redis_proxy.restore()
    await eventually(lambda: ("late", True) in nodes.events(user), timeout=10)
    assert await other.online(user)
    await asyncio.sleep(2 * TTL)
    assert nodes.events(user) == [("late", True)]


# -- the cluster's layout: users over the shards, instances ----------------------------------


@on_backends("redis-cluster")
async def test_users_are_spread_over_every_master(
    nodes: Nodes, redis_cluster: RedisClusterServer
) -> None:
    node = await nodes.add("a")
    assert isinstance(node, ClusterPresence)
    users = [uuid.uuid4() for _ in range(24)]
    for user in users:
        assert await node.opened(user)
    masters = {redis_cluster.master_of(node._user(str(user))) for user in users}
    assert len(masters) == 3
    assert all([await node.online(user) for user in users])


@on_backends("redis-cluster")
async def test_a_swept_nodes_late_open_is_refused_and_counted_anew(nodes: Nodes) -> None:
    stalled = await nodes.add("stalled")
    assert isinstance(stalled, ClusterPresence)
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
