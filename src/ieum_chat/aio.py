"""Stopping what runs in the background, with a deadline on every wait.

Every shutdown path waits through these two functions, so that a stop takes at most the time
it was given. A task's cancellation can be lost inside a library (a driver that catches the
``CancelledError`` while cleaning up a connection, or converts it into its own error), after
which the task runs on as if nothing had happened; a plain ``task.cancel(); await task`` then
waits forever. :func:`stop_tasks` cancels again until the tasks end or the time is up, and
reports what it had to leave behind instead of hanging.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

__all__ = ["finish_within", "stop_tasks", "stop_tasks_after"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long to wait for a cancelled task before cancelling it again: a lost cancellation is
# noticed this soon, and a task that handles its cancellation normally ends well within it.
_RECANCEL_EVERY = 0.1


async def stop_tasks(tasks: Iterable[asyncio.Future[Any]], limit: float, what: str) -> bool:
    """Cancel ``tasks`` and wait at most ``limit`` seconds for them to end, cancelling
    again the ones that swallowed the request. True when every task ended; False (logged)
    when some were still running at the deadline: they are left cancelled, never awaited."""
    pending = {task for task in tasks if not task.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, limit)
    while pending:
        for task in pending:
            task.cancel()
        remaining = deadline - loop.time()
        if remaining <= 0:
            log.error("%s: %d task(s) still running after %.1f s", what, len(pending), limit)
            return False
        _, pending = await asyncio.wait(pending, timeout=min(_RECANCEL_EVERY, remaining))
    return True


async def stop_tasks_after(tasks: Iterable[asyncio.Future[Any]], limit: float, what: str) -> bool:
    """Let ``tasks`` run for at most ``limit`` seconds, then stop the ones still running
    (:func:`stop_tasks`, with a short grace of its own). True when all ended by themselves."""
    pending = {task for task in tasks if not task.done()}
    if pending:
        _, pending = await asyncio.wait(pending, timeout=max(0.0, limit))
    if not pending:
        return True
    await stop_tasks(pending, _RECANCEL_EVERY * 5, what)
    return False


async def finish_within(awaitable: Awaitable[T], limit: float, what: str) -> T | None:
    """Await ``awaitable`` for at most ``limit`` seconds; None (logged) when time ran out or
    it failed. For shutdown steps: one slow or broken step must not hold up the ones after it.
    It runs in a task of its own, so the deadline holds even if it swallows its cancellation."""
    task: asyncio.Future[T] = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=max(0.0, limit))
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        log.error("%s did not finish within %.1f s; going on", what, limit)
        task.cancel()
        task.add_done_callback(_consume)
        return None
    if task.cancelled():
        log.error("%s was cancelled; going on", what)
        return None
    exc = task.exception()
    if exc is not None:
        log.error("%s failed; going on", what, exc_info=exc)
        return None
    return task.result()


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a step left behind, so asyncio does not report it as lost."""
    if not future.cancelled():
        future.exception()
