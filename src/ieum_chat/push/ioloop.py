"""An event loop of its own, in a thread, for the requests to push providers and the webhook.

An HTTP/2 request through httpx takes a dozen turns of the event loop it runs on. On the
chat's loop, busy with sockets, each turn waits behind the chat's callbacks: measured on a
node carrying 230 messages/s for 50 couples, a push that takes 2 ms alone took 126 ms (p50).
On a loop of their own the requests wait only for the interpreter's lock, which the two
threads share; in the same measurement, repeated A/B, the median lag from a message to its
push fell from 4.2 and 4.8 s to 2.2 and 3.5 s. The chat's loop hands each request over and
takes its result back.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["IoLoop"]

T = TypeVar("T")

_JOIN_TIMEOUT = 5.0


class IoLoop:
    def __init__(self, name: str = "push-io") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on this loop and wait for it here; cancelling the wait cancels it."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_JOIN_TIMEOUT)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()
