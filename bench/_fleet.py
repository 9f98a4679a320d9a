"""The parent side of the generator: worker processes, their pipes, the progress line."""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.process
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from multiprocessing.connection import Connection, wait
from typing import Any

from ._targets import Couple
from ._worker import WorkerConfig, worker_main

__all__ = ["BenchError", "Fleet", "Progress"]


class BenchError(Exception):
    """The run could not be carried out; a one-line reason."""


class Fleet:
    """`procs` worker processes, each with its share of the couples (both members of a couple
    in one process). Used as a context manager: leaving it ends every worker."""

    def __init__(self, base: WorkerConfig, couples: Sequence[Couple], procs: int) -> None:
        procs = max(1, min(procs, len(couples)))
        # spawn, not fork: each worker starts with a clean interpreter and its own event loop.
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []  # reports from each worker
        self._commands: list[Connection] = []  # to each worker
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self.latest: dict[int, dict[str, Any]] = {}
        self.results: dict[int, dict[str, Any]] = {}
        children: list[Connection] = []
        for w in range(procs):
            indexes = list(range(w, len(couples), procs))
            cfg = replace(base, couples=[couples[i] for i in indexes], first_index=indexes)
            commands_in, commands_out = ctx.Pipe(duplex=False)
            reports_in, reports_out = ctx.Pipe(duplex=False)
            self.conns.append(reports_in)
            self._commands.append(commands_out)
            worker = ctx.Process(target=worker_main, args=(commands_in, reports_out, cfg))
            worker.daemon = True
            self.procs.append(worker)
            children += [commands_in, reports_out]
        for started in self.procs:
            started.start()
        for child in children:
            child.close()  # so that a dead worker reads as EOF here

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        for conn in self._commands:
            with contextlib.suppress(OSError):
                conn.send(("stop",))
        deadline = time.monotonic() + 10
        for proc in self.procs:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join(2)

    def broadcast(self, message: tuple[Any, ...]) -> None:
        for conn in self._commands:
            conn.send(message)

    def poll(self, timeout: float, on_message: Callable[[int, str, Any], None]) -> None:
        """Handles whatever the workers sent within `timeout` seconds."""
        for conn in wait(self.conns, max(0.0, timeout)):
            assert isinstance(conn, Connection)
            index = self.conns.index(conn)
            try:
                kind, payload = conn.recv()
            except EOFError:
                if index not in self.results:
                    code = self.procs[index].exitcode
                    raise BenchError(f"worker {index} exited (code {code})") from None
                continue
            if kind == "error":
                raise BenchError(f"worker {index} failed: {payload}")
            if kind == "result":
                self.results[index] = payload
            elif kind in ("progress", "connecting"):
                self.latest[index] = payload
            on_message(index, kind, payload)

    def wait_ready(self, timeout: float, show: Callable[[str], None]) -> list[dict[str, Any]]:
        ready: dict[int, dict[str, Any]] = {}
        started = time.monotonic()

        def on_message(index: int, kind: str, payload: Any) -> None:
            if kind == "ready":
                ready[index] = payload
            elif kind == "connecting":
                opened = sum(p.get("opened", 0) for p in self.latest.values())
                show(f"[{time.monotonic() - started:6.1f}s connect ] {opened:,} sessions open")

        deadline = started + timeout
        while len(ready) < len(self.conns):
            if time.monotonic() > deadline:
                raise BenchError(f"sessions not open after {timeout:.0f} s")
            self.poll(deadline - time.monotonic(), on_message)
        self.latest.clear()
        return [ready[i] for i in range(len(self.conns))]

    def totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for counts in self.latest.values():
            for key, value in counts.items():
                out[key] = out.get(key, 0) + value
        return out


class Progress:
    """One status line: rewritten in place on a terminal, one line per period otherwise."""

    def __init__(self, enabled: bool = True, every: float = 1.0) -> None:
        self._tty = sys.stderr.isatty()
        self._enabled = enabled
        self._every = every if self._tty else max(every, 2.0)
        self._last = 0.0

    def show(self, line: str, force: bool = False) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self._every:
            return
        self._last = now
        if self._tty:
            sys.stderr.write("\r" + line[:200] + "\x1b[K")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self._enabled and self._tty:
            sys.stderr.write("\n")
            sys.stderr.flush()
