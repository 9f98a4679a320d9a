"""One broker suite, every backend: each test taking ``cluster`` runs on the in-process
broker, on Redis and on a Redis Cluster (sharded Pub/Sub).

A test sees the service as a cluster of nodes: ``await cluster.node(i)`` is node i's broker.
The in-process broker is one node, so every index gives the same broker; with Redis every
index is a broker of its own, sharing a key prefix that no other test uses. Either way the
promise is the same: a payload published on any node reaches every subscriber on every node
once, in publish order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from tests.support.redis import REDIS_URL, require_redis, unique_prefix
from tests.support.redis_backends import redis_backend, redis_proxy
from tests.support.redis_cluster import RedisClusterServer, redis_cluster
from tests.support.teardown import bounded_teardown

from ieum_chat.broker import Broker, create_broker

BACKENDS = ["memory", "redis", "redis-cluster"]

# The fixtures, for the cluster backend and for the suites of the Redis backends alone.
__all__ = ["redis_backend", "redis_cluster", "redis_proxy"]


@dataclass
class Cluster:
    backend: str
    redis_url: str | None = None
    prefix: str = field(default_factory=unique_prefix)
    nodes: dict[int, Broker] = field(default_factory=dict)

    async def node(self, index: int = 0, *, url: str | None = None) -> Broker:
        if self.backend == "memory":
            index = 0
        broker = self.nodes.get(index)
        if broker is None:
            broker = create_broker(
                None if self.backend == "memory" else (url or self.redis_url), prefix=self.prefix
            )
            await broker.start()
            self.nodes[index] = broker
        return broker

    async def close(self) -> None:
        for broker in self.nodes.values():
            await broker.close()
        self.nodes.clear()


class Collector:
    """A handler that records what it gets; handlers must only enqueue, and this one does."""

    def __init__(self) -> None:
        self.got: list[tuple[str, bytes]] = []
        self._changed = asyncio.Event()

    def __call__(self, channel: str, payload: bytes) -> None:
        self.got.append((channel, payload))
        self._changed.set()

    @property
    def payloads(self) -> list[bytes]:
        return [payload for _, payload in self.got]

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[bytes]:
        async with asyncio.timeout(timeout):
            while len(self.got) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.payloads

    async def settle(self, seconds: float = 0.2) -> list[bytes]:
        """What arrived after waiting a little more (duplicates would show here)."""
        await asyncio.sleep(seconds)
        return self.payloads


@pytest.fixture(params=BACKENDS)
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    url = None
    if request.param == "redis":
        require_redis()
        url = REDIS_URL
    elif request.param == "redis-cluster":
        server: RedisClusterServer = request.getfixturevalue("redis_cluster")
        url = server.url
    c = Cluster(request.param, url)
    try:
        yield c
    finally:
        await bounded_teardown("cluster", c.close())


@pytest.fixture
def new_collector() -> type[Collector]:
    """``new_collector()`` makes a handler that records what it gets."""
    return Collector
