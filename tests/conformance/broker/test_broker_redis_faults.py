"""The Redis broker when Redis goes away: local subscribers keep being served, the link comes
back by itself, every channel is subscribed again, and the resync hook fires so that
subscribers catch up from the database. Redis is reached through a TCP proxy the tests cut."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.support.redis import REDIS_URL, redis_address, require_redis, unique_prefix
from tests.support.tcp_proxy import ProxyFactory, TcpProxy
from tests.support.teardown import bounded_teardown

from ieum_chat.broker.redis import RedisBroker
from ieum_chat.errors import BrokerError

CHANNEL = "couple:faults"
FAST = {"backoff": (0.05, 0.2), "ping_interval": 0.5, "subscribe_timeout": 2.0}


@pytest.fixture
def proxy(tcp_proxy: ProxyFactory) -> TcpProxy:
    require_redis()
    return tcp_proxy(*redis_address())


@pytest.fixture
async def pair(proxy: TcpProxy) -> AsyncIterator[tuple[RedisBroker, RedisBroker]]:
    """Node A reaches Redis through the proxy, node B directly."""
    prefix = unique_prefix()
    a = RedisBroker(f"redis://127.0.0.1:{proxy.port}/0", prefix=prefix, **FAST)  # type: ignore[arg-type]
    b = RedisBroker(REDIS_URL, prefix=prefix, **FAST)  # type: ignore[arg-type]
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await bounded_teardown("pair", asyncio.gather(a.close(), b.close()))


class Resyncs:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def eventually(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_local_subscribers_are_served_while_redis_is_down(
    pair: tuple[RedisBroker, RedisBroker], proxy: TcpProxy, new_collector: Any
) -> None:
    a, b = pair
    local, remote = new_collector(), new_collector()
    await a.subscribe(CHANNEL, local)
    await b.subscribe(CHANNEL, remote)
    proxy.cut()
    for i in range(5):
        await a.publish(CHANNEL, b"%d\nduring" % (i + 1))
    assert await local.wait_for(5) == [b"%d\nduring" % (i + 1) for i in range(5)]
    assert await remote.settle(0.3) == []  # could not cross: B catches up by seq later
    with pytest.raises(BrokerError):
        await eventually_down(a)


async def eventually_down(broker: RedisBroker) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        await broker.ping()  # raises BrokerError once the link is known lost
        await asyncio.sleep(0.05)


async def test_the_link_comes_back_resubscribes_and_resyncs(
    pair: tuple[RedisBroker, RedisBroker], proxy: TcpProxy, new_collector: Any
) -> None:
    a, b = pair
    resyncs_a, resyncs_b = Resyncs(), Resyncs()
    a.set_resync_handler(resyncs_a)
    b.set_resync_handler(resyncs_b)
    on_a, on_b = new_collector(), new_collector()
    await a.subscribe(CHANNEL, on_a)
    await b.subscribe(CHANNEL, on_b)
    proxy.cut()
    await a.publish(CHANNEL, b"1\nlost on the way to B")
    await b.publish(CHANNEL, b"2\nlost on the way to A")
    await on_a.wait_for(1)
    await on_b.wait_for(1)
    await eventually(lambda: a.dropped == 1 and not _whole(a))
    proxy.restore()
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


async def test_subscribing_while_down_returns_and_is_live_after_the_reconnect(
    pair: tuple[RedisBroker, RedisBroker], proxy: TcpProxy, new_collector: Any
) -> None:
    a, b = pair
    resyncs = Resyncs()
    a.set_resync_handler(resyncs)
    proxy.cut()
    handler = new_collector()
    async with asyncio.timeout(1.0):
        await a.subscribe("couple:while-down", handler)
    proxy.restore()
    await eventually(lambda: resyncs.count == 1)
    await b.publish("couple:while-down", b"0\nhello")
    assert await handler.wait_for(1) == [b"0\nhello"]


async def test_unsubscribing_while_down_is_forgotten_after_the_reconnect(
    pair: tuple[RedisBroker, RedisBroker], proxy: TcpProxy, new_collector: Any
) -> None:
    a, b = pair
    resyncs = Resyncs()
    a.set_resync_handler(resyncs)
    gone, stays = new_collector(), new_collector()
    await a.subscribe("couple:gone", gone)
    await a.subscribe(CHANNEL, stays)
    proxy.cut()
    await a.unsubscribe("couple:gone", gone)
    proxy.restore()
    await eventually(lambda: resyncs.count == 1)
    await b.publish("couple:gone", b"0\nunheard")
    await b.publish(CHANNEL, b"0\nheard")
    assert await stays.wait_for(1) == [b"0\nheard"]
    assert await gone.settle() == []


async def test_a_node_starts_while_redis_is_down(proxy: TcpProxy, new_collector: Any) -> None:
    prefix = unique_prefix()
    proxy.cut()
    a = RedisBroker(f"redis://127.0.0.1:{proxy.port}/0", prefix=prefix, **FAST)  # type: ignore[arg-type]
    b = RedisBroker(REDIS_URL, prefix=prefix, **FAST)  # type: ignore[arg-type]
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
        proxy.restore()
        await eventually(lambda: a.channel_count() == 1 and _whole(a))
        await b.publish(CHANNEL, b"0\nremote")
        assert await local.wait_for(2) == [b"0\nlocal", b"0\nremote"]
    finally:
        await a.close()
        await b.close()


def _whole(broker: RedisBroker) -> bool:
    return broker._whole.is_set()


async def test_a_closed_broker_refuses_to_publish(pair: tuple[RedisBroker, RedisBroker]) -> None:
    a, _ = pair
    await a.close()
    with pytest.raises(BrokerError):
        await a.publish(CHANNEL, b"0\nlate")
    with pytest.raises(BrokerError):
        await a.subscribe(CHANNEL, lambda c, p: None)
