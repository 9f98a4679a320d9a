"""What the Redis backends share: connection pools built from a URL, and which driver errors
mean "Redis is unreachable" (translated to :class:`ieum_chat.errors.BrokerError` at the edge)."""

from __future__ import annotations

from redis.asyncio.connection import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

__all__ = ["CONNECT_TIMEOUT", "REDIS_ERRORS", "make_pool"]

# Seconds to open a connection; a blackholed Redis must not stall a node for long.
CONNECT_TIMEOUT = 2.0

# ConnectionError and TimeoutError of redis-py are RedisErrors; OSError covers the rest of
# what a socket can raise (and the builtin TimeoutError).
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)


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
