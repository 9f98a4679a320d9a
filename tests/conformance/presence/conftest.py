"""One presence suite, every backend: each test taking ``cluster`` runs on the in-process
counts, on Redis and on a Redis Cluster.

``await cluster.node(i)`` is node i's presence. In-process presence is one node, so every
index gives the same one; with Redis every index is a node of its own, sharing a key prefix
that no other test uses (deleted afterwards). Transitions a node finds by itself (a dead
node swept, counts re-asserted) are recorded per node in ``cluster.reported[i]``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from tests.support.redis import REDIS_URL, delete_prefix, require_redis, unique_prefix
from tests.support.redis_backends import redis_backend, redis_proxy
from tests.support.redis_cluster import RedisClusterServer, redis_cluster
from tests.support.teardown import bounded_teardown

from ieum_chat.broker import Presence, create_presence

BACKENDS = ["memory", "redis", "redis-cluster"]

# The fixtures, for the cluster backend and for the suites of the Redis backends alone.
__all__ = ["redis_backend", "redis_cluster", "redis_proxy"]


@dataclass
class Cluster:
    backend: str
    redis_url: str | None = None
    ttl: float = 15.0
    prefix: str = field(default_factory=unique_prefix)
    nodes: dict[int, Presence] = field(default_factory=dict)
    reported: dict[int, list[tuple[uuid.UUID, bool]]] = field(default_factory=dict)

    async def node(self, index: int = 0, *, url: str | None = None) -> Presence:
        if self.backend == "memory":
            index = 0
        presence = self.nodes.get(index)
        if presence is None:
            presence = create_presence(
                None if self.backend == "memory" else (url or self.redis_url),
                prefix=self.prefix,
                ttl=self.ttl,
            )
            reported = self.reported.setdefault(index, [])

            async def record(user_id: uuid.UUID, online: bool) -> None:
                reported.append((user_id, online))

            presence.set_transition_handler(record)
            await presence.start()
            self.nodes[index] = presence
        return presence

    def all_reported(self) -> list[tuple[uuid.UUID, bool]]:
        return [item for items in self.reported.values() for item in items]

    async def close(self) -> None:
        for presence in self.nodes.values():
            await presence.close()
        self.nodes.clear()
        if self.backend == "redis":
            delete_prefix(self.prefix)  # (the cluster's own processes go with the session)


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
