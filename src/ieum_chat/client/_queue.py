"""The bounded queue between the connection and the application's `events()` loop.

It never blocks the connection: the reader must keep reading RECEIPTs and heart-beats even
when the application stops reading events. `put_nowait` says whether the item fit; the
client decides what a refusal means (chat messages are fetched again by seq later, other
events are dropped and counted).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

__all__ = ["EventQueue"]

T = TypeVar("T")


class EventQueue(Generic[T]):
    __slots__ = ("_closed", "_items", "_maxsize", "_nonempty")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be positive")
        self._maxsize = maxsize
        self._items: deque[T] = deque()
        self._nonempty = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @property
    def free(self) -> int:
        return self._maxsize - len(self._items)

    def put_nowait(self, item: T) -> bool:
        if self._closed or len(self._items) >= self._maxsize:
            return False
        self._items.append(item)
        self._nonempty.set()
        return True

    async def get(self) -> T | None:
        """The next item; None once the queue is closed and empty."""
        while not self._items:
            if self._closed:
                return None
            self._nonempty.clear()
            await self._nonempty.wait()
        return self._items.popleft()

    def close(self) -> None:
        """No more puts; `get()` returns what is left, then None."""
        self._closed = True
        self._nonempty.set()
