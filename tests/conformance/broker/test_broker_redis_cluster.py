"""The broker on a Redis Cluster: channels are shard channels spread over the masters, and
when a channel's slot changes master (Redis then unsubscribes the node by itself), the link
is remade on the new master and the resync hook fires. The URL names seed nodes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.support.redis import unique_prefix
from tests.support.redis_cluster import RedisClusterServer
from tests.support.teardown import bounded_teardown

from ieum_chat.broker._redis import ClusterAddress
from ieum_chat.broker.redis import RedisBroker

FAST = {"backoff": (0.05, 0.5), "ping_interval": 0.5, "subscribe_timeout": 2.0}


@pytest.fixture
async def pair(
    redis_cluster: RedisClusterServer,
) -> AsyncIterator[tuple[RedisBroker, RedisBroker, str]]:
    prefix = unique_prefix()
    a = RedisBroker(redis_cluster.url, prefix=prefix, **FAST)  # type: ignore[arg-type]
    b = RedisBroker(redis_cluster.url, prefix=prefix, **FAST)  # type: ignore[arg-type]
    await a.start()
    await b.start()
    try:
        yield a, b, prefix
    finally:
        await bounded_teardown("pair", asyncio.gather(a.close(), b.close()))


async def eventually(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


class Resyncs:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def test_channels_of_every_shard_cross_nodes(
    pair: tuple[RedisBroker, RedisBroker, str],
    redis_cluster: RedisClusterServer,
    new_collector: Any,
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


async def test_a_channel_whose_master_changes_is_relinked_and_resynced(
    pair: tuple[RedisBroker, RedisBroker, str],
    redis_cluster: RedisClusterServer,
    new_collector: Any,
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
    await eventually(lambda: resyncs.count >= 1)
    await eventually(b._whole.is_set)
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
