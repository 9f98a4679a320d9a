"""One media job in a child process, from the parent's side: start
``python -m ieum_chat.uploads._worker`` with the job as JSON on its command line, read its one
JSON answer, and make sure nothing of it outlives the job.

The child is the leader of a new session (``start_new_session``), so it and the ffmpeg or
ffprobe it runs form one process group; on the wall-clock deadline, on cancellation, and after
any exit that was not a clean answer, the whole group gets SIGKILL. The child limits its own
memory, CPU time and file sizes (``_worker``), and ffmpeg inherits those limits; the parent
only owns the clock. Output is read in full but kept only up to a bound, so a child that
floods its pipes costs CPU time until the deadline, never memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ieum_chat

__all__ = ["STDERR_MAX", "STDOUT_MAX", "WORKER", "JobFailed", "child_env", "run_job"]

log = logging.getLogger(__name__)

WORKER = "ieum_chat.uploads._worker"
# An answer is a few hundred bytes; anything near this is a child gone wrong.
STDOUT_MAX = 64 * 1024
# What the logs get of a child's complaints.
STDERR_MAX = 16 * 1024
_READ_CHUNK = 64 * 1024
# Where ``import ieum_chat`` finds the package (``src`` in a checkout, site-packages else).
_PACKAGE_ROOT = str(Path(ieum_chat.__file__).resolve().parents[1])
# How long the members of a killed group may take to die before we give up waiting.
_GROUP_GRACE = 2.0

# Signals the kernel sends for the limits the child set on itself (RLIMIT_CPU, RLIMIT_FSIZE).
_LIMIT_SIGNALS: dict[int, str] = {
    signal.SIGXCPU: "used more CPU time than its limit",
    signal.SIGXFSZ: "wrote a file larger than its limit",
}


class JobFailed(Exception):
    """The child gave no answer: it ran out of time, was killed, crashed or exited with an
    error. ``reason`` completes a sentence about the job ("took longer than 20 s"), for
    clients; ``stderr`` is what the child said, for the logs only."""

    def __init__(self, reason: str, stderr: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.stderr = stderr


@dataclass(slots=True)
class _Pipe:
    data: bytearray
    overflow: bool = False


def child_env() -> dict[str, str]:
    """The child's whole environment: a ``PATH`` to find ffmpeg, a ``PYTHONPATH`` that reaches
    this package however it was installed, and nothing of the server's secrets."""
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "PYTHONPATH": os.pathsep.join(dict.fromkeys([_PACKAGE_ROOT, *inherited])),
        # glibc reserves 64 MiB of address space per malloc arena, up to 8 per core; under
        # RLIMIT_AS that reservation, not the memory used, would decide when a decoder fails.
        "MALLOC_ARENA_MAX": "2",
    }


async def _drain(stream: asyncio.StreamReader, pipe: _Pipe, limit: int) -> None:
    while chunk := await stream.read(_READ_CHUNK):
        room = limit - len(pipe.data)
        if len(chunk) > room:
            pipe.overflow = True
        pipe.data += chunk[: max(room, 0)]


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies waiting for init do not)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rpartition(b")")[2].split()
        except OSError:  # ended while we looked
            continue
        if len(fields) > 2 and fields[0] != b"Z" and int(fields[2]) == pgid:
            return True
    return False


async def _kill_group(pgid: int) -> None:
    """SIGKILL to the group, then wait (briefly) until its members are dead: a signal is
    delivered when the process next runs, and ffmpeg is not ours to wait for."""
    with contextlib.suppress(ProcessLookupError):  # every member is gone already
        os.killpg(pgid, signal.SIGKILL)
    if not sys.platform.startswith("linux"):  # no /proc to look in
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _GROUP_GRACE
    while await asyncio.to_thread(_group_alive, pgid):
        if loop.time() > deadline:
            log.warning("processes of media job group %d still run after SIGKILL", pgid)
            return
        await asyncio.sleep(0.01)


def _failure(returncode: int) -> str:
    if returncode >= 0:
        return f"failed (exit status {returncode})"
    signum = -returncode
    if limit := _LIMIT_SIGNALS.get(signum):
        return limit
    if signum == signal.SIGKILL:  # not ours (we say "took longer"): the kernel's OOM killer
        return "was killed (SIGKILL)"
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    return f"crashed ({name})"


async def run_job(request: dict[str, Any], *, seconds: float, cwd: Path) -> dict[str, Any]:
    """Run one job and return the child's answer (a JSON object). Raises :class:`JobFailed`
    when there is none, or none within ``seconds``; on return or raise, no process of the job
    is left running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-P",  # the working directory holds uploads: never a place to import from
        "-B",  # nor to write bytecode to, from a process whose file sizes are limited
        "-m",
        WORKER,
        json.dumps(request),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(),
        cwd=cwd,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    out, err = _Pipe(bytearray()), _Pipe(bytearray())
    answered = False
    try:
        async with asyncio.timeout(seconds):
            await asyncio.gather(
                _drain(proc.stdout, out, STDOUT_MAX),
                _drain(proc.stderr, err, STDERR_MAX),
                proc.wait(),
            )
        answered = proc.returncode == 0 and not out.overflow
    except TimeoutError:
        raise JobFailed(f"took longer than {seconds:g} s", _text(err)) from None
    finally:
        if not answered:
            # a crashed child may leave ffmpeg behind; a timed-out or cancelled one is alive
            await _kill_group(proc.pid)  # the signal goes before its first await
            await proc.wait()
    if out.overflow:
        raise JobFailed("wrote too much output", _text(err))
    if proc.returncode:
        raise JobFailed(_failure(proc.returncode), _text(err))
    try:
        answer = json.loads(out.data)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise JobFailed("gave no answer", _text(err))
    return answer


def _text(pipe: _Pipe) -> str:
    return pipe.data.decode("utf-8", "replace") + (" [...]" if pipe.overflow else "")
