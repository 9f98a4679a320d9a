"""A small bounded cache with expiry, for membership and sender lookups on the hot path.

Entries live in two generations, each a plain dict: ``put`` goes to the young one, and every
``ttl / 2`` the old generation is dropped and the young one becomes old. An entry is so
served for at least ``ttl / 2`` and never ``ttl`` or more after it was put (a ``get`` does
not extend it). The young generation turns over early when it holds ``maxsize / 2``
entries, so the cache never holds more than ``maxsize``.

An entry costs one slot of one dict. A connected user's record is cached for as long as the
user is; with an ``OrderedDict`` of ``(expiry, value)`` tuples that was about 170 bytes an
entry, now about 40.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["TTLCache"]

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    __slots__ = ("_clock", "_half", "_limit", "_old", "_turn_at", "_young")

    def __init__(
        self,
        maxsize: int,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if maxsize < 2 or ttl <= 0:
            raise ValueError("maxsize must be at least 2 and ttl positive")
        self._young: dict[K, V] = {}
        self._old: dict[K, V] = {}
        self._half = ttl / 2
        self._limit = maxsize // 2
        self._clock = clock
        # Everything in the young generation was put at or after _turn_at - ttl / 2.
        self._turn_at = clock() + self._half

    def _turn(self, now: float) -> None:
        if now < self._turn_at + self._half:
            self._old = self._young
            self._turn_at += self._half
        else:  # idle for a whole ttl: both generations are past
            self._old = {}
            self._turn_at = now + self._half
        self._young = {}

    def get(self, key: K) -> V | None:
        if self._clock() >= self._turn_at:
            self._turn(self._clock())
        value = self._young.get(key)
        if value is None:
            value = self._old.get(key)
        return value

    def put(self, key: K, value: V) -> None:
        if self._clock() >= self._turn_at:
            self._turn(self._clock())
        self._old.pop(key, None)
        young = self._young
        young[key] = value
        if len(young) >= self._limit:
            # Full: what is old now goes, and so, within ttl / 2, what was just put.
            self._old = young
            self._young = {}
            self._turn_at = self._clock() + self._half

    def discard(self, key: K) -> None:
        self._young.pop(key, None)
        self._old.pop(key, None)

    def clear(self) -> None:
        self._young.clear()
        self._old.clear()

    def __len__(self) -> int:
        return len(self._young) + len(self._old)
