"""What the kernel says about a process and the machine: CPU seconds, RSS, listeners, limits.

Read straight from /proc (proc(5)) rather than through psutil: the fields are few and stable,
and the generator should not need a compiled dependency to run on a bare server.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "CpuSample",
    "cpu_seconds",
    "find_listener_pid",
    "flush_dirty_pages",
    "machine_cpu",
    "machine_info",
    "pids_named",
    "raise_nofile_limit",
    "rss_kb",
    "run_queue_seconds",
    "schedstat_cpu_seconds",
    "wait_for_quiet",
]

_CLK_TCK: Final = os.sysconf("SC_CLK_TCK")
_LISTEN: Final = "0A"  # TCP_LISTEN in /proc/net/tcp's st column


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    # comm may hold spaces and parentheses: everything after the last ')' is space-separated,
    # starting with field 3 (state).
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used (its threads included, children not)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime: fields 14 and 15


def schedstat_cpu_seconds(pid: int) -> float:
    """The CPU time of a single-threaded process, to the nanosecond (the first field of its
    ``/proc/PID/schedstat``; ``cpu_seconds`` counts in clock ticks)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def run_queue_seconds(pid: int | str = "self") -> float:
    """Seconds the process's threads have spent runnable but waiting for a core (the second
    field of each thread's ``/proc/PID/task/TID/schedstat``). On a machine with few cores a
    process in a chain of processes (generator, server, database) waits there each time it
    wakes while the others run. OSError when the kernel keeps no such statistics."""
    waited = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            waited.append(int((task / "schedstat").read_text().split()[1]))
        except FileNotFoundError:
            continue  # the thread ended meanwhile, or the kernel keeps no schedstat
    if not waited:
        raise FileNotFoundError(f"no schedstat for process {pid}")
    return sum(waited) / 1e9


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def rss_kb(pid: int) -> int:
    return _status_kb(pid, "VmRSS:")


def pids_named(comm: str) -> list[int]:
    """Every process whose command name is `comm` (e.g. each PostgreSQL backend)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == comm:
                    found.append(int(entry.name))
            except OSError:
                continue  # gone meanwhile
    return found


@dataclass(frozen=True, slots=True)
class CpuSample:
    """CPU seconds of the whole machine (/proc/stat): busy and total, summed over cores, and
    stolen: the time a virtual machine's cores were runnable but the host ran something else
    (counted in busy and total too). A stall of the whole machine shows there."""

    busy: float
    total: float
    steal: float = 0.0


def machine_cpu() -> CpuSample:
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user
    return CpuSample((total - idle) / _CLK_TCK, total / _CLK_TCK, values[7] / _CLK_TCK)


def wait_for_quiet(max_wait: float, busy_pct: float = 20.0, span: float = 2.0) -> float:
    """Waits (at most `max_wait` seconds) for the machine to be less than `busy_pct` busy over
    `span` seconds: on a shared host a neighbour's test run would be measured with ours.
    Returns the busy share of the last span, in percent."""
    deadline = time.monotonic() + max_wait
    while True:
        first = machine_cpu()
        time.sleep(span)
        last = machine_cpu()
        total = last.total - first.total
        busy = 100 * (last.busy - first.busy) / total if total else 0.0
        if busy < busy_pct or time.monotonic() >= deadline:
            return busy


def _meminfo_kb() -> dict[str, int]:
    """``/proc/meminfo``'s figures, in kB, by name (``MemTotal``, ``Dirty``...)."""
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        out[name] = int(rest.split()[0])
    return out


def _unwritten_kb() -> int:
    """Page-cache data not yet on disk: dirty, or being written back."""
    meminfo = _meminfo_kb()
    return meminfo["Dirty"] + meminfo["Writeback"]


def flush_dirty_pages() -> dict[str, float]:
    """Writes every dirty page of the machine to disk (sync(2)) and says how much there was.

    A run must measure its own traffic, not what the one before it left for the kernel to
    write. PostgreSQL's table and index pages reach the page cache without an fsync, and the
    kernel writes them back once they are 30 s old (``vm.dirty_expire_centisecs``), in
    bursts: the writeback of a peak run's pages (tens of MB) during the next run held its
    WAL fsyncs, and so its commits, for 20 to 50 ms each time. A run long enough for its own
    pages to age meets their writeback too, at its own rate."""
    before = _unwritten_kb()
    started = time.monotonic()
    os.sync()
    return {"unwritten_kb": before, "sync_s": round(time.monotonic() - started, 3)}


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == _LISTEN and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    return inodes


def find_listener_pid(port: int) -> int | None:
    """The process listening on TCP `port` (e.g. RabbitMQ's beam.smp on 15674), if visible."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in targets:
                    return int(entry.name)
        except OSError:
            continue
    return None


def raise_nofile_limit() -> tuple[int, int]:
    """Every session is a file descriptor: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def machine_info() -> dict[str, object]:
    model = platform.processor() or "unknown"
    mem_kb = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = _meminfo_kb()["MemTotal"]
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
