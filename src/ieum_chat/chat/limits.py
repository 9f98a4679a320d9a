"""Rate limits as token buckets: per user (bounded in number, least recently used dropped),
and single ones (how many new sessions a node admits per second)."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["RateLimiter", "TokenBucket"]


def _refill(tokens: float, last: float, now: float, rate: float, burst: float) -> float:
    return min(burst, tokens + max(0.0, now - last) * rate)


class TokenBucket:
    """``rate`` tokens per second up to ``burst``: one bucket, for a limit of the whole node."""

    __slots__ = ("_burst", "_clock", "_last", "_rate", "_tokens")

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = self._burst
        self._last = clock()

    def take(self) -> float:
        """Spend one token and return 0.0; when there is none, spend nothing and return the
        seconds until there will be one."""
        now = self._clock()
        self._tokens = _refill(self._tokens, self._last, now, self._rate, self._burst)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate


class RateLimiter:
    """``rate`` tokens per second up to ``burst``; :meth:`allow` spends one."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")
        self._rate = rate
        self._burst = float(burst)
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[uuid.UUID, tuple[float, float]] = OrderedDict()

    def allow(self, key: uuid.UUID) -> bool:
        now = self._clock()
        tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = _refill(tokens, last, now, self._rate, self._burst)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return allowed
