"""The machine's Redis, for tests: a key prefix per test so that runs never collide.

Pub/Sub channels are shared by every database number of a Redis, so isolation is by prefix
(``IEUM_REDIS_PREFIX``), not by ``SELECT``. When Redis cannot be reached, tests that need it
are skipped on a developer's machine and FAIL when ``CI`` is set.
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis
from redis.exceptions import RedisError

__all__ = ["REDIS_URL", "delete_prefix", "require_redis", "unique_prefix"]

REDIS_URL = os.environ.get("IEUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> None:
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except (RedisError, OSError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is required on CI ({REDIS_URL}): {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")


def unique_prefix() -> str:
    return f"ieum-test:{uuid.uuid4().hex[:12]}:"


def delete_prefix(prefix: str) -> None:
    """Remove every key under ``prefix`` (Redis has no persistence here; this keeps it tidy)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
