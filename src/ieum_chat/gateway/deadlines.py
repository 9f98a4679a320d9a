"""The deadlines of many sessions on one loop timer.

Every STOMP session has a deadline: the CONNECT timeout, then the next heart-beat to send, the
peer's heart-beat window or the token's expiry. A loop timer for each costs 544 bytes
(uvloop's handle, libuv's timer, the context it copies), a tenth of an idle session. Here
a deadline is rounded up to a tick and its owner put in that tick's set; one loop timer is
armed for the earliest tick. A deadline is never early and at most one tick late (plus the
loop's own lateness).

Owners are anything with an ``on_deadline()`` method; each keeps the key ``add`` returned and
gives it back to ``remove``. An owner whose key was taken by a firing is no longer in the
wheel: ``on_deadline`` is its one call, and it adds itself again if it has a next deadline.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
from typing import Protocol

__all__ = ["Deadlines", "Owner"]

log = logging.getLogger(__name__)


class Owner(Protocol):
    def on_deadline(self) -> None: ...


class Deadlines:
    """Owners waiting for a time (``time.monotonic()``), fired in order of tick."""

    __slots__ = ("_armed", "_buckets", "_firing", "_handle", "_keys", "tick")

    def __init__(self, tick: float = 0.02) -> None:
        if tick <= 0:
            raise ValueError("tick must be positive")
        self.tick = tick
        self._buckets: dict[int, set[Owner]] = {}
        # The keys of the buckets, as a heap; a bucket emptied by remove() leaves its key
        # behind until it comes up, or until the heap holds twice as many keys as buckets.
        self._keys: list[int] = []
        self._handle: asyncio.TimerHandle | None = None
        self._armed: int | None = None  # the key the loop timer is set for
        self._firing: int | None = None  # the key being fired, while it is

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets.values())

    def add(self, owner: Owner, when: float) -> int:
        """Call ``owner.on_deadline()`` once, at ``when`` or up to a tick later; returns the
        key for :meth:`remove`. A time already past fires on the next loop turn."""
        key = math.ceil(when / self.tick)
        if self._firing is not None and key <= self._firing:
            # Added back by its own firing (or another's) for a time already past: the next
            # tick, so that one firing always ends.
            key = self._firing + 1
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = set()
            heapq.heappush(self._keys, key)
            if self._firing is None and (self._armed is None or key < self._armed):
                self._arm(key)
        bucket.add(owner)
        return key

    def remove(self, owner: Owner, key: int) -> None:
        """``owner`` no longer waits (a no-op when its deadline fired already)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return
        bucket.discard(owner)
        if not bucket and key != self._firing:
            del self._buckets[key]
            if len(self._keys) > 2 * len(self._buckets) + 64:
                self._keys = list(self._buckets)
                heapq.heapify(self._keys)

    def _arm(self, key: int) -> None:
        if self._handle is not None:
            self._handle.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, key * self.tick - time.monotonic())
        self._handle = loop.call_at(loop.time() + delay, self._fire)
        self._armed = key

    def _fire(self) -> None:
        self._handle = self._armed = None
        now = time.monotonic()
        keys, buckets = self._keys, self._buckets
        try:
            while keys and keys[0] * self.tick <= now:
                key = heapq.heappop(keys)
                bucket = buckets.get(key)
                if bucket is None:
                    continue  # emptied by remove()
                self._firing = key
                # One at a time: an owner that another's firing removes (closed it) is out
                # of the bucket before its turn.
                while bucket:
                    owner = bucket.pop()
                    try:
                        owner.on_deadline()
                    except Exception:
                        log.exception("deadline of %r failed", owner)
                del buckets[key]
                keys = self._keys  # remove() may have rebuilt it
        finally:
            self._firing = None
        keys = self._keys
        while keys and keys[0] not in buckets:
            heapq.heappop(keys)
        if keys:
            self._arm(keys[0])
