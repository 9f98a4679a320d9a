"""Instructions a process executes over a window, counted by valgrind's callgrind.

On a shared virtual machine CPU time per message moves by a tenth or more from one minute to
the next; the instructions a process executes for the same work do not. So a process started
under :func:`command` can be asked for what it executed between two moments: :func:`zero`
at the start of the window, :func:`dump` at its end (which returns the count). The process
runs 50-100 times slower meanwhile, so the count, not the time, is what to read.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

from ._fleet import BenchError

__all__ = ["command", "dump", "require_callgrind", "zero"]

# A dump's header gives what was collected in its window ("summary"); its last line
# ("totals") is written last, so a dump that has it is complete.
_SUMMARY = re.compile(rb"^summary: (\d+)$", re.MULTILINE)
_COMPLETE = re.compile(rb"^totals: \d+$", re.MULTILINE)
_CONTROL_TIMEOUT = 120.0


def require_callgrind() -> None:
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} not found (Debian: apt-get install valgrind)")


def command(out_dir: Path) -> list[str]:
    """The prefix that runs a program under callgrind, its dumps written to ``out_dir``."""
    return [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out_dir / 'callgrind.out.%p'}",
    ]


def _control(pid: int, option: str) -> None:
    proc = subprocess.run(
        ["callgrind_control", option, str(pid)],
        capture_output=True,
        text=True,
        timeout=_CONTROL_TIMEOUT,
        check=False,
    )
    # It says so, but exits with 0, when the process is not running under callgrind.
    said = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 or said.startswith("Error"):
        raise BenchError(f"callgrind_control {option} {pid} failed: {said}")


def zero(pid: int) -> None:
    """Start counting afresh."""
    _control(pid, "--zero")


def dump(pid: int, out_dir: Path) -> int:
    """Instructions executed since the last :func:`zero` (or the start), from a new dump."""
    before = set(out_dir.glob(f"callgrind.out.{pid}.*"))
    _control(pid, "--dump")
    # The dump is written by the process itself, at its next turn of valgrind's scheduler.
    deadline = time.monotonic() + _CONTROL_TIMEOUT
    while time.monotonic() < deadline:
        new = sorted(set(out_dir.glob(f"callgrind.out.{pid}.*")) - before)
        if len(new) > 1:
            raise BenchError(f"more than one new callgrind dump of {pid}: {new}")
        text = new[0].read_bytes() if new else b""
        summary = _SUMMARY.search(text)
        if summary is not None and _COMPLETE.search(text) is not None:
            return int(summary.group(1))
        time.sleep(0.2)
    raise BenchError(f"callgrind wrote no dump of {pid} with its totals in time")
