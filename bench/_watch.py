"""Samples of the server under test (and its database processes) taken by the parent process."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._proc import CpuSample, cpu_seconds, machine_cpu, rss_kb, run_queue_seconds

__all__ = ["Sample", "ServerWatch"]


@dataclass(frozen=True, slots=True)
class Sample:
    server_cpu: float | None
    server_rss_kb: int | None
    db_cpu: dict[int, float]
    machine: CpuSample
    # Seconds spent runnable, waiting for a core (``run_queue_seconds``); None where the
    # kernel keeps no such statistics.
    server_wait: float | None = None
    db_wait: dict[int, float] = field(default_factory=dict)


@dataclass
class ServerWatch:
    """The server's pid, and substrings of the command lines of its database's processes
    (PostgreSQL titles each backend ``postgres: user dbname host(port) state``)."""

    pid: int | None = None
    db_match: tuple[str, ...] = ()
    _db_pids: list[int] = field(default_factory=list)

    def _db_processes(self) -> tuple[dict[int, float], dict[int, float]]:
        """CPU seconds and run-queue seconds of each database process."""
        cpu: dict[int, float] = {}
        wait: dict[int, float] = {}
        if not self.db_match:
            return cpu, wait
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                cmdline = (entry / "cmdline").read_bytes().decode("utf-8", "replace")
                if any(m in cmdline for m in self.db_match):
                    cpu[pid] = cpu_seconds(pid)
                    wait[pid] = run_queue_seconds(pid)
            except OSError:
                continue
        return cpu, wait

    def sample(self, with_db: bool = True) -> Sample:
        cpu = rss = wait = None
        if self.pid is not None:
            with contextlib.suppress(OSError):
                cpu, rss = cpu_seconds(self.pid), rss_kb(self.pid)
            with contextlib.suppress(OSError):
                wait = run_queue_seconds(self.pid)
        db_cpu, db_wait = self._db_processes() if with_db else ({}, {})
        return Sample(cpu, rss, db_cpu, machine_cpu(), wait, db_wait)

    def alive(self) -> bool:
        return self.pid is not None and os.path.exists(f"/proc/{self.pid}")

    @staticmethod
    def window(first: Sample, last: Sample, deliveries: int, sends: int) -> dict[str, Any]:
        """What the server (and its database) spent between two samples, and per delivery
        and per acknowledged SEND (a chat message or a reaction) in between."""
        out: dict[str, Any] = {}
        if first.server_cpu is not None and last.server_cpu is not None:
            cpu = last.server_cpu - first.server_cpu
            out["cpu_s"] = round(cpu, 3)
            out["cpu_us_per_delivery"] = round(cpu * 1e6 / deliveries, 2) if deliveries else None
            out["cpu_us_per_send"] = round(cpu * 1e6 / sends, 2) if sends else None
            out["rss_kb_start"] = first.server_rss_kb
            out["rss_kb_end"] = last.server_rss_kb
        if first.server_wait is not None and last.server_wait is not None:
            out["run_queue_s"] = round(last.server_wait - first.server_wait, 3)
        if first.db_cpu or last.db_cpu:
            # A backend that appeared during the window is charged all its CPU time (and
            # all its time waiting for a core).
            db = sum(v - first.db_cpu.get(pid, 0.0) for pid, v in last.db_cpu.items())
            out["db_cpu_s"] = round(db, 3)
            if last.db_wait:
                waited = sum(v - first.db_wait.get(pid, 0.0) for pid, v in last.db_wait.items())
                out["db_run_queue_s"] = round(waited, 3)
            out["db_processes"] = len(last.db_cpu)
            if "cpu_s" in out and deliveries:
                out["with_db_cpu_us_per_delivery"] = round(
                    (out["cpu_s"] + db) * 1e6 / deliveries, 2
                )
        busy = last.machine.busy - first.machine.busy
        total = last.machine.total - first.machine.total
        out["machine_busy_pct"] = round(100 * busy / total, 1) if total else None
        out["machine_busy_s"] = round(busy, 3)
        out["machine_steal_s"] = round(last.machine.steal - first.machine.steal, 3)
        return out
