"""A deadline on the teardown of fixtures that own a server, a node or a client.

A teardown that hangs would otherwise wait for the test run's global timeout and be reported
as a timeout somewhere in the event loop. Wrapped in :func:`bounded_teardown`, it fails after
its own, much shorter deadline with the fixture's name in the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from ieum_chat.aio import stop_tasks

__all__ = ["TEARDOWN_TIMEOUT", "bounded_teardown"]

TEARDOWN_TIMEOUT = 30.0  # seconds; far above what any of them needs


async def bounded_teardown(
    fixture: str, awaitable: Awaitable[object], timeout: float = TEARDOWN_TIMEOUT
) -> None:
    """Run ``awaitable`` (a fixture's clean-up) with a deadline; raise naming ``fixture``
    when it does not finish in time (the clean-up is then cancelled, again if it must be)."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        await stop_tasks([task], 2.0, f"teardown of {fixture}")
        raise AssertionError(f"teardown of fixture {fixture!r} did not finish within {timeout} s")
    task.result()
