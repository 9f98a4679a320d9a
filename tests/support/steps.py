"""Running a coroutine that must not wait for anything."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

__all__ = ["in_one_step"]


def in_one_step(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to its end without the event loop; an AssertionError if it suspends
    (awaits anything that is not ready). Its exception, if it raises one, propagates."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError(f"{coro!r} suspended its caller")
