"""The Redis broker on Redis and on a Redis Cluster, when Redis goes away or a channel moves:
local subscribers keep being served, the link comes back by itself, every channel is
subscribed again, and the resync hook fires so that subscribers catch up from the database.

Each scenario runs on both backends unless it can only be staged on one. A node cut off from
its one Redis (a TCP proxy the test cuts, between node A and Redis) is Redis-only: a cluster
client reaches the nodes the cluster names, around any proxy. Channels spread over the shards
and a channel whose master changes (Redis then unsubscribes the node by itself) are
cluster-only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import pytest
from tests.support.polling import eventually
from tests.support.redis import unique_prefix
from tests.support.redis_backends import RedisBackend, on_backends
from tests.support.redis_cluster import RedisClusterServer
from tests.support.steps import in_one_step
from tests.support.tcp_proxy import TcpProxy
from tests.support.teardown import bounded_teardown

from ieum_chat.broker._redis import ClusterAddress
from ieum_chat.broker.redis import RedisBroker
from ieum_chat.errors import BrokerError

CHANNEL = "couple:faults"
# Reconnect backoff (first, cap): a cluster's failover takes seconds, a proxy restores at once.
BACKOFF = {"redis": (0.05, 0.2), "redis-cluster": (0.05, 0.5)}


def broker(backend: RedisBackend, prefix: str, url: str | None = None) -> RedisBroker:
    """A node with short timeouts: a lost link is found and remade in well under a second."""
    return RedisBroker(
        url or backend.url,
        prefix=prefix,
        ping_interval=0.5,
        subscribe_timeout=2.0,
        backoff=BACKOFF[backend.name],
    )


class Pair(NamedTuple):
    a: RedisBroker
    b: RedisBroker
    prefix: str


@pytest.fixture
async def pair(redis_backend: RedisBackend, request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    """Two nodes on one key prefix. On Redis node A reaches it through ``redis_proxy`` (the
    test's, to cut) and node B directly; on a cluster both reach it directly."""
    prefix = unique_prefix()
    url_a = None
    if redis_backend.cluster is None:
        url_a = redis_backend.url_via(request.getfixturevalue("redis_proxy"))
    a = broker(redis_backend, prefix, url_a)
    b = broker(redis_backend, prefix)
    await a.start()
    await b.start()
    try:
        yield Pair(a, b, prefix)
    finally:
        await bounded_teardown("pair", asyncio.gather(a.close(), b.close()))


class Resyncs:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def _whole(broker: RedisBroker) -> bool:
    return broker._whole.is_set()


async def test_a_closed_broker_refuses_to_publish(pair: Pair) -> None:
    await pair.a.close()
    with pytest.raises(BrokerError):
        await pair.a.publish(CHANNEL, b"0\nlate")
    with pytest.raises(BrokerError):
        await pair.a.subscribe(CHANNEL, lambda c, p: None)


# -- one Redis, cut off behind a proxy -------------------------------------------------------


async def test_a_node_starts_while_redis_is_down(
    redis_backend: RedisBackend, redis_proxy: TcpProxy, new_collector: Any
) -> None:
    """On a cluster only the discovery goes through the proxy: cut, node A has no slot map,
    and what it publishes meanwhile fails inside the driver; once it is back, A's messages
    must reach node B again."""
    prefix = unique_prefix()
    redis_proxy.cut()
    a = broker(redis_backend, prefix, redis_backend.url_via(redis_proxy))
    b = broker(redis_backend, prefix)
    try:
        started = time.monotonic()
        await a.start(wait=0.3)
        assert time.monotonic() - started < 2
        with pytest.raises(BrokerError):
            await a.ping()
        local = new_collector()
        await a.subscribe(CHANNEL, local)
        await a.publish(CHANNEL, b"0\nlocal")
        assert await local.wait_for(1) == [b"0\nlocal"]
        await b.start()
        redis_proxy.restore()
        await eventually(lambda: a.channel_count() == 1 and _whole(a))
        await b.publish(CHANNEL, b"0\nremote")
        assert await local.wait_for(2) == [b"0\nlocal", b"0\nremote"]
        remote = new_collector()
        await b.subscribe(CHANNEL, remote)
        await eventually(lambda: b.channel_count() == 1 and _whole(b))
        await a.publish(CHANNEL, b"0\nfrom a")
        assert await remote.wait_for(1) == [b"0\nfrom a"]
    finally:
        await a.close()
        await b.close()


@on_backends("redis")
async def test_local_subscribers_are_served_while_redis_is_down(
    pair: Pair, redis_proxy: TcpProxy, new_collector: Any
) -> None:
    a, b, _ = pair
    local, remote = new_collector(), new_collector()
    await a.subscribe(CHANNEL, local)
    await b.subscribe(CHANNEL, remote)
    redis_proxy.cut()
    for i in range(5):
        await a.publish(CHANNEL, b"%d\nduring" % (i + 1))
    assert await local.wait_for(5) == [b"%d\nduring" % (i + 1) for i in range(5)]
    assert await remote.settle(0.3) == []  # could not cross: B catches up by seq later
    with pytest.raises(BrokerError):
        await eventually_down(a)


@on_backends("redis")
async def test_publish_never_waits_for_a_redis_that_is_gone(
    pair: Pair, redis_proxy: TcpProxy, new_collector: Any
) -> None:
    """Cut off, a publish still returns at once: this node's subscribers are served inside
    it and the payload waits in the broker's own bounded queue, not in its caller."""
    a = pair.a
    local = new_collector()
    await a.subscribe(CHANNEL, local)
    redis_proxy.cut()
    sent = [b"%d\nwhile cut" % (i + 1) for i in range(2_000)]
    for payload in sent:
        in_one_step(a.publish(CHANNEL, payload))
    assert local.payloads == sent


async def eventually_down(broker: RedisBroker) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        await broker.ping()  # raises BrokerError once the link is known lost
        await asyncio.sleep(0.05)


@on_backends("redis")
async def test_the_link_comes_back_resubscribes_and_resyncs(
    pair: Pair, redis_proxy: TcpProxy, new_collector: Any
) -> None:
    a, b, _ = pair
    resyncs_a, resyncs_b = Resyncs(), Resyncs()
    a.set_resync_handler(resyncs_a)
    b.set_resync_handler(resyncs_b)
    on_a, on_b = new_collector(), new_collector()
    await a.subscribe(CHANNEL, on_a)
    await b.subscribe(CHANNEL, on_b)
    redis_proxy.cut()
    await a.publish(CHANNEL, b"1\nlost on the way to B")
    await b.publish(CHANNEL, b"2\nlost on the way to A")
    await on_a.wait_for(1)
    await on_b.wait_for(1)
    await eventually(lambda: a.dropped == 1 and not _whole(a))
    redis_proxy.restore()
    await eventually(lambda: resyncs_a.count == 1)
    await a.ping()
    # A dropped a payload, so when it publishes again it asks every node to resync.
    await a.publish(CHANNEL, b"3\nafter")
    await eventually(lambda: resyncs_b.count >= 1)
    await b.publish(CHANNEL, b"4\nafter too")
    assert await on_b.wait_for(3) == [b"2\nlost on the way to A", b"3\nafter", b"4\nafter too"]
    assert await on_a.wait_for(3) == [b"1\nlost on the way to B", b"3\nafter", b"4\nafter too"]
    assert await on_a.settle() == on_a.payloads[:3]
    assert resyncs_a.count == 1  # once per outage


@on_backends("redis")
async def test_subscribing_while_down_returns_and_is_live_after_the_reconnect(
    pair: Pair, redis_proxy: TcpProxy, new_collector: Any
) -> None:
    a, b, _ = pair
    resyncs = Resyncs()
    a.set_resync_handler(resyncs)
    redis_proxy.cut()
    handler = new_collector()
    async with asyncio.timeout(1.0):
        await a.subscribe("couple:while-down", handler)
    redis_proxy.restore()
    await eventually(lambda: resyncs.count == 1)
    await b.publish("couple:while-down", b"0\nhello")
    assert await handler.wait_for(1) == [b"0\nhello"]


@on_backends("redis")
async def test_unsubscribing_while_down_is_forgotten_after_the_reconnect(
    pair: Pair, redis_proxy: TcpProxy, new_collector: Any
) -> None:
    a, b, _ = pair
    resyncs = Resyncs()
    a.set_resync_handler(resyncs)
    gone, stays = new_collector(), new_collector()
    await a.subscribe("couple:gone", gone)
    await a.subscribe(CHANNEL, stays)
    redis_proxy.cut()
    await a.unsubscribe("couple:gone", gone)
    redis_proxy.restore()
    await eventually(lambda: resyncs.count == 1)
    await b.publish("couple:gone", b"0\nunheard")
    await b.publish(CHANNEL, b"0\nheard")
    assert await stays.wait_for(1) == [b"0\nheard"]
    assert await gone.settle() == []


# -- a cluster's shards ----------------------------------------------------------------------


@on_backends("redis-cluster")
async def test_channels_of_every_shard_cross_nodes(
    pair: Pair, redis_cluster: RedisClusterServer, new_collector: Any
) -> None:
    a, b, prefix = pair
    channels = [f"couple:{i}" for i in range(24)]
    masters = {redis_cluster.master_of(prefix + channel) for channel in channels}
    assert len(masters) == 3  # the channels are spread over every master
    handler = new_collector()
    for channel in channels:
        await b.subscribe(channel, handler)
    for channel in channels:
        await a.publish(channel, channel.encode())
    got = await handler.wait_for(len(channels))
    assert sorted(got) == sorted(channel.encode() for channel in channels)


@on_backends("redis-cluster")
async def test_a_channel_whose_master_changes_is_relinked_and_resynced(
    pair: Pair, redis_cluster: RedisClusterServer, new_collector: Any
) -> None:
    a, b, prefix = pair
    resyncs = Resyncs()
    b.set_resync_handler(resyncs)
    handler = new_collector()
    await b.subscribe("couple:moving", handler)
    await a.publish("couple:moving", b"0\nbefore")
    await handler.wait_for(1)
    assert resyncs.count == 0
    await asyncio.to_thread(redis_cluster.hand_over, prefix + "couple:moving")
    # The old master turned replica unsubscribes b; b relinks to the new master and resyncs.
    await eventually(lambda: resyncs.count >= 1, timeout=15)
    await eventually(b._whole.is_set, timeout=15)
    await a.publish("couple:moving", b"0\nafter")
    assert await handler.wait_for(2) == [b"0\nbefore", b"0\nafter"]
    assert await handler.settle() == [b"0\nbefore", b"0\nafter"]


def test_the_cluster_url_names_seed_nodes_and_credentials() -> None:
    address = ClusterAddress.parse("redis+cluster://user:p%40ss@10.0.0.1:7000,[::1]:7001/")
    assert address.nodes == (("10.0.0.1", 7000), ("::1", 7001))
    assert (address.username, address.password) == ("user", "p@ss")
    assert ClusterAddress.parse("redis+cluster://h:1").nodes == (("h", 1),)
    for bad in ("redis+cluster://h", "redis+cluster://h:x", "redis://h:1", "redis+cluster://"):
        with pytest.raises(ValueError, match="redis"):
            ClusterAddress.parse(bad)
