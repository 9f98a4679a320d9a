"""A TCP proxy for fault injection: the server's database connections go through it, and a
test cuts them (every open connection reset, new ones refused) and restores them, or stalls
them (connections stay open but nothing is forwarded, as behind a dead link) and lets them flow.

It runs its own event loop in a thread, so sync and async tests can drive it alike. Tests get
one from the ``tcp_proxy`` factory fixture (tests/support/fixtures.py), which stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import Future
from typing import Any

from ieum_chat.aio import stop_tasks
from tests.support.server import free_port

__all__ = ["STOP_TIMEOUT", "ProxyFactory", "TcpProxy", "stop_proxies"]

STOP_TIMEOUT = 10.0  # seconds; stopping takes milliseconds unless the proxy's loop is stuck


class TcpProxy:
    def __init__(self, upstream_host: str = "127.0.0.1", upstream_port: int = 5432) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.connections_made = 0

    def _call(self, coro: Coroutine[Any, Any, None], timeout: float = STOP_TIMEOUT) -> None:
        future: Future[None] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        future.result(timeout=timeout)

    def start(self) -> TcpProxy:
        self._thread.start()
        self.restore()
        return self

    def restore(self) -> None:
        """Listen again: new connections reach the upstream."""

        async def listen() -> None:
            if self._server is None:
                self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

        self._call(listen())

    def cut(self) -> None:
        """Refuse new connections and reset every open one."""

        async def cut() -> None:
            if self._server is not None:
                self._server.close()
                self._server = None
            for writer in list(self._writers):
                transport = writer.transport
                with contextlib.suppress(Exception):
                    transport.abort()
            self._writers.clear()

        self._call(cut())

    def stall(self) -> None:
        """Keep every connection open but forward nothing (held bytes go on after :meth:`flow`)."""

        async def stall() -> None:
            self._flowing.clear()

        self._call(stall())

    def flow(self) -> None:
        async def flow() -> None:
            self._flowing.set()

        self._call(flow())

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Cut every connection, end the pipes and the thread; raise if that takes longer
        than ``timeout`` seconds instead of leaving a thread behind unnoticed."""
        if not self._thread.is_alive():
            return
        self.cut()

        async def end_pipes() -> None:
            current = asyncio.current_task()
            pipes = [task for task in asyncio.all_tasks() if task is not current]
            if not await stop_tasks(pipes, timeout / 2, "tcp proxy"):
                raise AssertionError(f"tcp proxy on port {self.port}: pipes did not end")

        try:
            self._call(end_pipes(), timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=timeout)
        if self._thread.is_alive():
            raise AssertionError(f"tcp proxy on port {self.port}: its thread did not stop")
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_made += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    await self._flowing.wait()
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)


# What the ``tcp_proxy`` fixture gives: a running proxy to the upstream ``(host, port)``.
ProxyFactory = Callable[[str, int], TcpProxy]


def stop_proxies(proxies: Iterable[TcpProxy]) -> None:
    """Stop every proxy, each within its deadline, even when one of them fails to stop."""
    errors: list[Exception] = []
    for proxy in proxies:
        try:
            proxy.stop()
        except Exception as exc:  # the others still get stopped
            errors.append(exc)
    if errors:
        raise AssertionError(f"{len(errors)} tcp prox(ies) did not stop: {errors}")
