"""The two kinds of Redis a backend suite runs on: the machine's Redis (``redis``) and the
session's Redis Cluster (``redis-cluster``, tests/support/redis_cluster.py).

A test taking ``redis_backend`` runs once on each. A scenario that only one of them can stage
(a proxy cut between a node and its one Redis; a master failover) says so with
:func:`on_backends`, which keeps the test to the backends named.

A conftest that uses these fixtures imports them, with ``redis_cluster``, so that pytest finds
them there.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.support.redis import REDIS_URL, delete_prefix, redis_address, require_redis
from tests.support.redis_cluster import RedisClusterServer
from tests.support.tcp_proxy import ProxyFactory, TcpProxy

__all__ = ["REDIS_BACKENDS", "RedisBackend", "on_backends", "redis_backend", "redis_proxy"]

REDIS_BACKENDS = ("redis", "redis-cluster")


@dataclass(frozen=True)
class RedisBackend:
    name: str
    url: str
    cluster: RedisClusterServer | None = None  # the cluster's processes, on ``redis-cluster``

    @property
    def entry(self) -> tuple[str, int]:
        """The address a client reaches first: the Redis, or the cluster's first seed node."""
        if self.cluster is None:
            return redis_address()
        return "127.0.0.1", self.cluster.ports[0]

    def url_via(self, proxy: TcpProxy) -> str:
        """The URL that reaches :attr:`entry` through ``proxy``. On a cluster only the
        discovery goes through it: the nodes it names are reached directly."""
        if self.cluster is None:
            return f"redis://127.0.0.1:{proxy.port}/0"
        return f"redis+cluster://127.0.0.1:{proxy.port}"

    def delete_prefix(self, prefix: str) -> None:
        """Every key under ``prefix`` gone, as after a restart without persistence."""
        if self.cluster is None:
            delete_prefix(prefix)
        else:
            self.cluster.delete_prefix(prefix)


def on_backends(*names: str) -> pytest.MarkDecorator:
    """Run the test on these backends only (the others are not collected for it)."""
    unknown = set(names) - set(REDIS_BACKENDS)
    if unknown:
        raise ValueError(f"unknown Redis backends {sorted(unknown)}; known: {REDIS_BACKENDS}")
    return pytest.mark.parametrize("redis_backend", names, indirect=True)


@pytest.fixture(params=REDIS_BACKENDS)
def redis_backend(request: pytest.FixtureRequest) -> RedisBackend:
    if request.param == "redis":
        require_redis()
        return RedisBackend("redis", REDIS_URL)
    cluster: RedisClusterServer = request.getfixturevalue("redis_cluster")
    return RedisBackend("redis-cluster", cluster.url, cluster)


@pytest.fixture
def redis_proxy(redis_backend: RedisBackend, tcp_proxy: ProxyFactory) -> TcpProxy:
    """A TCP proxy in front of the backend's :attr:`~RedisBackend.entry`, for a test to cut
    or stall; reach it with :meth:`RedisBackend.url_via`."""
    return tcp_proxy(*redis_backend.entry)
