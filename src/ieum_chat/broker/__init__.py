"""Fan-out and presence backends, chosen by URL scheme and imported lazily."""

from __future__ import annotations

from ieum_chat.broker.base import Broker, Handler, ResyncHandler
from ieum_chat.broker.presence import (
    LocalPresence,
    Presence,
    SessionLimitReached,
    TransitionHandler,
)

__all__ = [
    "Broker",
    "Handler",
    "LocalPresence",
    "Presence",
    "ResyncHandler",
    "SessionLimitReached",
    "TransitionHandler",
    "create_broker",
    "create_presence",
]

CLUSTER_SCHEME = "redis+cluster"
_REDIS_SCHEMES = ("redis", "rediss", "unix", CLUSTER_SCHEME)
_EXPECTED = "expected memory://, redis://, rediss://, redis+cluster://"


def _scheme(url: str) -> str:
    return url.split(":", 1)[0]


def create_broker(url: str | None, *, prefix: str = "ieum:") -> Broker:
    """``None`` or ``memory://``: the in-process broker; ``redis://``, ``rediss://`` or
    ``unix://``: Redis Pub/Sub between nodes (channels named ``<prefix><channel>``);
    ``redis+cluster://host:port[,host:port...]``: sharded Pub/Sub on a Redis Cluster."""
    if url is None or url.startswith("memory:"):
        from ieum_chat.broker.memory import MemoryBroker

        return MemoryBroker()
    if _scheme(url) in _REDIS_SCHEMES:
        from ieum_chat.broker.redis import RedisBroker

        return RedisBroker(url, prefix=prefix)
    raise ValueError(f"unsupported broker URL scheme {_scheme(url)!r} ({_EXPECTED})")


def create_presence(url: str | None, *, prefix: str = "ieum:", ttl: float = 15.0) -> Presence:
    """Session counts of this process alone (no URL), or of every node sharing a Redis."""
    if url is None or url.startswith("memory:"):
        return LocalPresence()
    if _scheme(url) == CLUSTER_SCHEME:
        from ieum_chat.broker.redis_cluster_presence import ClusterPresence

        return ClusterPresence(url, prefix=prefix, ttl=ttl)
    if _scheme(url) in _REDIS_SCHEMES:
        from ieum_chat.broker.redis_presence import RedisPresence

        return RedisPresence(url, prefix=prefix, ttl=ttl)
    raise ValueError(f"unsupported presence URL scheme {_scheme(url)!r} ({_EXPECTED})")
