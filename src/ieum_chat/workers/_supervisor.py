"""The supervisor of ``ieum-chat serve --workers N``: it starts N worker processes on one
port, starts a worker again when one dies (after a back-off when it keeps dying), passes
SIGTERM and SIGINT on (each worker drains as a single server does), and on SIGHUP replaces
the workers one at a time: the replacement first, the old worker stopped only once the
replacement accepts, so the port never stops accepting.

The supervisor serves nothing itself; it owns the directory the workers' metrics live in
(prometheus-client's multiprocess mode), created at start and removed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from ieum_chat.config import Settings
from ieum_chat.workers._worker import READY, worker_main

__all__ = ["Supervisor", "refusal", "supervise"]

log = logging.getLogger("ieum_chat.workers")

READY_TIMEOUT = 60.0  # seconds a worker may take from its start to accepting
STABLE_AFTER = 10.0  # a worker that lived this long died of something new: no back-off
MAX_BACKOFF = 30.0
KILL_SLACK = 5.0  # seconds past IEUM_SHUTDOWN_GRACE before a stopping worker is killed


def refusal(settings: Settings) -> str | None:
    """Why these settings cannot run several workers, in one line (None: they can)."""
    n = settings.workers
    if settings.redis_url is None:
        return (
            f"IEUM_WORKERS={n} needs IEUM_REDIS_URL: the in-process broker cannot carry "
            "messages, presence and typing between worker processes"
        )
    if settings.database_url.startswith("sqlite") and (
        ":memory:" in settings.database_url or settings.database_url.rstrip("/") == "sqlite:"
    ):
        return f"IEUM_WORKERS={n} needs a database file or PostgreSQL, not an in-memory SQLite"
    if settings.port == 0:
        return f"IEUM_WORKERS={n} needs a fixed port: every worker binds the same one"
    if not hasattr(socket, "SO_REUSEPORT"):
        return f"IEUM_WORKERS={n} needs SO_REUSEPORT, which this platform lacks"
    return None


@dataclass(eq=False)
class _Worker:
    index: int
    process: BaseProcess
    ready: Connection
    started_at: float = field(default_factory=time.monotonic)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid or 0

    def signal(self, sig: int) -> None:
        if not self.exited.is_set():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def wake() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await done
    finally:
        loop.remove_reader(fd)


class Supervisor:
    def __init__(self, settings: Settings, metrics_dir: str) -> None:
        self.settings = settings
        self.metrics_dir = metrics_dir
        self.slots: list[_Worker | None] = [None] * settings.workers
        self.failures = [0] * settings.workers
        self.live: set[_Worker] = set()
        self.tasks: set[asyncio.Task[None]] = set()  # restarts and the rolling restart
        self.watches: set[asyncio.Task[None]] = set()  # one per live worker: until it exits
        self.stopping = asyncio.Event()
        self.serving = False  # every worker accepted once: from now on, one that dies is replaced
        self.rolling: asyncio.Task[None] | None = None
        self._context = multiprocessing.get_context("spawn")

    # -- processes -----------------------------------------------------------------------

    def _start(self, index: int) -> _Worker:
        reader, writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=worker_main,
            args=(self.settings, index, writer),
            name=f"ieum-chat worker {index}",
        )
        process.start()
        writer.close()
        worker = _Worker(index, process, reader)
        self.live.add(worker)
        self._spawn(self._watch(worker), self.watches)
        log.info("worker %d started (pid %d)", index, worker.pid)
        return worker

    async def _until_ready(self, worker: _Worker) -> bool:
        """True once the worker accepts; False when it exited first (its pipe closed) or
        took too long (then it is told to stop)."""
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await _readable(worker.ready.fileno())
        except TimeoutError:
            log.error("worker %d (pid %d) not accepting in time", worker.index, worker.pid)
            worker.signal(signal.SIGTERM)
            worker.ready.close()
            return False
        try:
            return worker.ready.recv_bytes() == READY
        except (EOFError, OSError):
            return False
        finally:
            worker.ready.close()

    async def _watch(self, worker: _Worker) -> None:
        await _readable(worker.process.sentinel)
        worker.process.join()
        self.live.discard(worker)
        _mark_dead(worker.pid, self.metrics_dir)
        worker.exited.set()
        code = worker.process.exitcode
        replace = self.serving and not self.stopping.is_set()
        if worker.stopping or not replace or self.slots[worker.index] is not worker:
            log.info("worker %d (pid %d) stopped (exit %s)", worker.index, worker.pid, code)
            return
        lived = time.monotonic() - worker.started_at
        failures = 0 if lived >= STABLE_AFTER else self.failures[worker.index] + 1
        self.failures[worker.index] = failures
        delay = min(MAX_BACKOFF, 0.5 * 2 ** (failures - 1)) if failures else 0.0
        log.warning(
            "worker %d (pid %d) died (exit %s) after %.1f s: starting another in %.1f s",
            worker.index, worker.pid, code, lived, delay,
        )  # fmt: skip
        self._spawn(self._replace(worker, delay))

    async def _replace(self, dead: _Worker, delay: float) -> None:
        await asyncio.sleep(delay)
        index = dead.index
        if self.stopping.is_set() or self.slots[index] is not dead:
            return  # stopping, or a rolling restart filled the slot meanwhile
        worker = self.slots[index] = self._start(index)
        if await self._until_ready(worker):
            log.info("worker %d (pid %d) accepting", index, worker.pid)

    async def _stop_worker(self, worker: _Worker) -> None:
        """SIGTERM (the worker drains), then SIGKILL if it outlives its grace."""
        worker.stopping = True
        worker.signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(self.settings.shutdown_grace + KILL_SLACK):
                await worker.exited.wait()
        except TimeoutError:
            log.error("worker %d (pid %d) did not stop: killed", worker.index, worker.pid)
            worker.signal(signal.SIGKILL)
            await worker.exited.wait()

    def _spawn(
        self, coro: Coroutine[Any, Any, None], owner: set[asyncio.Task[None]] | None = None
    ) -> asyncio.Task[None]:
        owner = self.tasks if owner is None else owner
        task = asyncio.create_task(coro)
        owner.add(task)
        task.add_done_callback(owner.discard)
        return task

    # -- reload --------------------------------------------------------------------------

    def _reload(self) -> None:
        if self.stopping.is_set():
            return
        if self.rolling is not None and not self.rolling.done():
            log.info("SIGHUP: a rolling restart is under way already")
            return
        log.info("SIGHUP: restarting the workers one at a time")
        self.rolling = self._spawn(self._roll())

    async def _roll(self) -> None:
        for index in range(len(self.slots)):
            # Not in its slot until it accepts: a replacement that fails is not restarted.
            new = self._start(index)
            if not await self._until_ready(new):
                log.error("rolling restart: worker %d's replacement did not start; stopped", index)
                return
            old, self.slots[index] = self.slots[index], new
            self.failures[index] = 0
            if old is not None and not old.exited.is_set():
                await self._stop_worker(old)
            log.info("rolling restart: worker %d replaced (pid %d)", index, new.pid)
        log.info("rolling restart done")

    # -- run -----------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        starting = [self._start(i) for i in range(len(self.slots))]
        self.slots[:] = starting
        ready = await asyncio.gather(*(self._until_ready(w) for w in starting))
        code = 0
        if not all(ready):
            failed = ", ".join(
                str(w.index) for w, ok in zip(starting, ready, strict=True) if not ok
            )
            log.error("worker %s did not start; stopping (see the log above)", failed)
            self.stopping.set()
            code = 1
        else:
            self.serving = True
            log.info("%d workers accepting on %s:%d", len(self.slots), *self._where())
        await self.stopping.wait()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(self._stop_worker(w) for w in list(self.live)))
        await asyncio.gather(*self.watches)
        return code

    def _where(self) -> tuple[str, int]:
        return self.settings.host, self.settings.port


def _mark_dead(pid: int, directory: str) -> None:
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def supervise(settings: Settings) -> int:
    """Run ``settings.workers`` workers until SIGTERM or SIGINT; the exit status."""
    metrics_dir = tempfile.mkdtemp(prefix="ieum-chat-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # the workers inherit it
    try:
        return asyncio.run(Supervisor(settings, metrics_dir).run())
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
