"""A local push service on an event loop of its own thread, for tests whose chat server is a
subprocess: the service keeps answering while the test blocks on sockets or sleeps."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from ._server import TlsServer

__all__ = ["Threaded", "wait_until"]

S = TypeVar("S", bound=TlsServer)


class Threaded(Generic[S]):
    """``with Threaded(FcmServer(tls)) as fcm:``: the service (``fcm.server``) runs until the
    block ends. ``call(fn)`` runs ``fn(server)`` on the service's loop (to script answers
    without racing its requests)."""

    def __init__(self, server: S) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> Threaded[S]:
        self._thread.start()
        started: Future[Any] = asyncio.run_coroutine_threadsafe(
            self.server.__aenter__(), self._loop
        )
        started.result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        stopped = asyncio.run_coroutine_threadsafe(
            self.server.__aexit__(None, None, None), self._loop
        )
        stopped.result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def call(self, fn: Callable[[S], object]) -> None:
        async def run() -> None:
            fn(self.server)

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)
