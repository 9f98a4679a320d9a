"""What the Redis backends share: connections built from a URL, and which driver errors mean
"Redis is unreachable" (translated to :class:`ieum_chat.errors.BrokerError` at the edge).

Two kinds of URL: ``redis://``, ``rediss://``, ``unix://`` name one Redis;
``redis+cluster://[user:password@]host:port[,host:port...]`` names a Redis Cluster by some of
its nodes (the others are found from them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

__all__ = [
    "CLUSTER_SCHEME",
    "CONNECT_TIMEOUT",
    "REDIS_ERRORS",
    "ClusterAddress",
    "Commands",
    "is_cluster",
    "make_client",
    "make_pool",
]

CLUSTER_SCHEME = "redis+cluster"

# Seconds to open a connection; a blackholed Redis must not stall a node for long.
CONNECT_TIMEOUT = 2.0

# ConnectionError and TimeoutError of redis-py are RedisErrors; OSError covers the rest of
# what a socket can raise (and the builtin TimeoutError). The cluster client's own failures
# (no node reachable to learn the slots from, a slot no node covers) are
# RedisClusterExceptions, which are no RedisErrors.
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)

# A client for ordinary commands: one Redis, or a cluster (commands routed by key slot).
Commands = Redis | RedisCluster


def is_cluster(url: str) -> bool:
    return url.split(":", 1)[0] == CLUSTER_SCHEME


@dataclass(frozen=True)
class ClusterAddress:
    """The seed nodes and credentials of a ``redis+cluster://`` URL."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> ClusterAddress:
        scheme, sep, rest = url.partition("://")
        if scheme != CLUSTER_SCHEME or not sep:
            raise ValueError(f"not a {CLUSTER_SCHEME}:// URL: {url!r}")
        rest = rest.split("/", 1)[0].split("?", 1)[0]
        username = password = None
        if "@" in rest:
            auth, rest = rest.rsplit("@", 1)
            user, colon, secret = auth.partition(":")
            username = unquote(user) or None
            password = unquote(secret) if colon else None
        nodes: list[tuple[str, int]] = []
        for item in rest.split(","):
            host, colon, port = item.strip().rpartition(":")
            if not colon or not host or not port.isdigit():
                raise ValueError(f"{CLUSTER_SCHEME}:// wants host:port[,host:port...]: {url!r}")
            nodes.append((host.strip("[]"), int(port)))
        return cls(tuple(nodes), username, password)

    def connection(self, host: str, port: int, *, socket_timeout: float | None) -> Connection:
        """One plain connection to one node (for the pub/sub links and topology queries)."""
        return Connection(
            host=host,
            port=port,
            username=self.username,
            password=self.password,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=socket_timeout,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
            protocol=2,
        )


def make_pool(url: str, *, max_connections: int, socket_timeout: float | None) -> ConnectionPool:
    """A bounded pool that never retries on its own: the backends decide when to reconnect
    (and know that they did, so they can resync). RESP2 keeps pub/sub replies plain arrays."""
    pool: ConnectionPool = ConnectionPool.from_url(
        url,
        max_connections=max_connections,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=socket_timeout,
        socket_keepalive=True,
        retry=Retry(NoBackoff(), 0),
        protocol=2,
    )
    return pool


def make_client(url: str, *, max_connections: int, socket_timeout: float) -> Commands:
    """A client for commands. On a cluster it follows MOVED and, after a failover, finds the
    new masters itself (a command fails while no master serves its slot)."""
    if not is_cluster(url):
        return Redis(
            connection_pool=make_pool(
                url, max_connections=max_connections, socket_timeout=socket_timeout
            )
        )
    address = ClusterAddress.parse(url)
    options: dict[str, Any] = {
        "startup_nodes": [ClusterNode(host, port) for host, port in address.nodes],
        "username": address.username,
        "password": address.password,
        "max_connections": max_connections,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": socket_timeout,
        "socket_keepalive": True,
        "protocol": 2,
        "retry": Retry(NoBackoff(), 1),
    }
    return RedisCluster(**options)


async def close_client(client: Commands) -> None:
    """Close a client of :func:`make_client` and every connection it holds."""
    await client.aclose()
    if isinstance(client, Redis):
        await client.connection_pool.disconnect()
