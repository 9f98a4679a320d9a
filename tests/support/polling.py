"""Waiting for a condition that another task, thread or process makes true."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["eventually"]


async def eventually(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    """Until ``predicate()`` holds; an AssertionError after ``timeout`` seconds (a guard: the
    wait ends as soon as the condition does)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
