"""Presence on Redis when nodes die and Redis goes away: a dead node's sessions expire once
(USER_DISCONNECTED reported by exactly one surviving node), and a node that lost touch with
Redis re-asserts its sessions when it is back (USER_CONNECTED reported once)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from tests.support.redis import REDIS_URL, delete_prefix, require_redis, unique_prefix
from tests.support.tcp_proxy import ProxyFactory, TcpProxy
from tests.support.teardown import bounded_teardown

from ieum_chat.broker.redis_presence import RedisPresence

TTL = 0.6  # heart-beat every 0.2 s; a dead node is swept within about a second


async def eventually(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


class Nodes:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[RedisPresence] = []
        self.reported: list[tuple[str, uuid.UUID, bool]] = []

    async def add(self, name: str, url: str = REDIS_URL, ttl: float = TTL) -> RedisPresence:
        node = RedisPresence(url, prefix=self.prefix, ttl=ttl, node_id=name)

        async def record(user_id: uuid.UUID, online: bool) -> None:
            self.reported.append((name, user_id, online))

        node.set_transition_handler(record)
        await node.start()
        self.nodes.append(node)
        return node

    async def crash(self, node: RedisPresence) -> None:
        """Stop heart-beating without leaving, like a killed process."""
        assert node._task is not None
        node._task.cancel()
        await asyncio.gather(node._task, return_exceptions=True)
        node._task = None
        await node._client.aclose()
        self.nodes.remove(node)

    def events(self, user: uuid.UUID) -> list[tuple[str, bool]]:
        return [(name, online) for name, u, online in self.reported if u == user]

    async def close(self) -> None:
        for node in self.nodes:
            await node.close()


@pytest.fixture
async def nodes() -> AsyncIterator[Nodes]:
    require_redis()
    group = Nodes(unique_prefix())
    try:
        yield group
    finally:
        try:
            await bounded_teardown("nodes", group.close())
        finally:
            delete_prefix(group.prefix)


@pytest.fixture
def proxy(tcp_proxy: ProxyFactory) -> TcpProxy:
    return tcp_proxy("127.0.0.1", 6379)


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
    # The node stalls past the TTL: no heart-beat, its liveness key expires, another sweeps.
    assert stalled._task is not None
    stalled._task.cancel()
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(f"{nodes.prefix}presence:alive:stalled")
    client.close()
    await eventually(lambda: ("other", False) in nodes.events(user))
    # It wakes up: its heart-beat finds the key gone and re-asserts the session it still has.
    await stalled._tick()
    assert ("stalled", True) in nodes.events(user)
    assert await other.online(user)
    assert await stalled.closed(user) is True
    assert nodes.events(user) == [("other", False), ("stalled", True)]


async def test_redis_emptied_under_the_nodes(nodes: Nodes) -> None:
    a, b = await nodes.add("a"), await nodes.add("b")
    user = uuid.uuid4()
    await a.opened(user)
    await b.opened(user)
    delete_prefix(nodes.prefix)  # a Redis restart without persistence
    await eventually(lambda: len(nodes.events(user)) >= 1)
    await asyncio.sleep(2 * TTL)
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


async def test_closing_right_after_redis_was_emptied(nodes: Nodes) -> None:
    for _ in range(5):
        a, b = await nodes.add("a"), await nodes.add("b")
        user = uuid.uuid4()
        await a.opened(user)
        await b.opened(user)
        delete_prefix(nodes.prefix)  # a Redis restart without persistence
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


async def test_closing_while_a_heartbeat_waits_on_a_stalled_redis(
    proxy: TcpProxy,
    nodes: Nodes,  # this order: the nodes close before the proxy stops
) -> None:
    """The heart-beat task is cancelled in the middle of a command. A driver may lose that
    cancellation (redis-py does while a read waits under its socket timeout); the node
    must leave within its bound all the same."""
    node = await nodes.add("stalled", f"redis://127.0.0.1:{proxy.port}/0")
    await node.opened(uuid.uuid4())
    proxy.stall()
    await asyncio.sleep(TTL)  # the next heart-beat is now waiting for its reply
    nodes.nodes.remove(node)
    assert await _closes_in_time(node) < CLOSE_BOUND
    proxy.flow()


async def test_sessions_counted_during_an_outage_are_asserted_after_it(
    proxy: TcpProxy,
    nodes: Nodes,  # this order: the nodes close before the proxy stops
) -> None:
    cut_off = await nodes.add("cut-off", f"redis://127.0.0.1:{proxy.port}/0")
    other = await nodes.add("other")
    came, went, both = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await cut_off.opened(went)
    proxy.cut()
    assert await cut_off.opened(came) is False  # counted here; announced after the outage
    assert await cut_off.closed(went) is False
    assert await cut_off.opened(both) is False
    assert await cut_off.closed(both) is False
    assert cut_off.session_count(came) == 1
    assert await cut_off.online(came)  # its own view while Redis is away
    proxy.restore()
    await eventually(lambda: ("cut-off", True) in nodes.events(came))
    await eventually(lambda: ("cut-off", False) in nodes.events(went))
    assert await other.online(came)
    assert not await other.online(went)
    await asyncio.sleep(2 * TTL)
    assert nodes.events(came) == [("cut-off", True)]
    assert nodes.events(went) == [("cut-off", False)]
    assert nodes.events(both) == []
