"""The child process of one media job: ``python -m ieum_chat.uploads._worker '<json>'``.

It limits itself before it reads a byte of the upload (address space, CPU time, size of the
files it writes, no core dumps); ffmpeg and ffprobe, started from here, inherit the limits.
Then it runs the job and prints one JSON object: ``{"ok": true, ...}`` with the job's
figures, or ``{"ok": false, "reason": "..."}`` when the file is refused (the reason is a
sentence for the uploader). Anything else, a crash or a kill, the parent reports itself.

The request: ``job`` (``image-check``, ``image-thumbnail``, ``av-check``,
``video-thumbnail``), ``source``, ``content_type``, ``out`` (the file to write, if any),
``what`` (``"image check"``: how reasons name the job), ``limits`` (``memory_bytes``,
``cpu_seconds``, ``file_bytes``) and the job's own settings.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
from typing import Any

__all__ = ["main", "set_limits"]


def set_limits(memory_bytes: int, cpu_seconds: int, file_bytes: int) -> None:
    """Hard limits, so nothing this process starts can raise them again. Past the CPU time
    the kernel sends SIGXCPU (and SIGKILL a second later); past the file size, SIGXFSZ."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # Python ignores SIGXFSZ (a write past the limit would raise EFBIG, which a decoder's
    # error handling could take for a broken file); the kernel's default ends the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)


def _run(request: dict[str, Any]) -> dict[str, Any]:
    job = request["job"]
    if job in ("image-check", "image-thumbnail"):
        from ieum_chat.uploads import _images

        if job == "image-check":
            return _images.check(request)
        return _images.thumbnail(request)
    from ieum_chat.uploads import _av

    if job == "av-check":
        return _av.check(request)
    if job == "video-thumbnail":
        return _av.thumbnail(request)
    raise ValueError(f"unknown job {job!r}")


def main(argv: list[str]) -> int:
    request = json.loads(argv[1])
    limits = request["limits"]
    set_limits(limits["memory_bytes"], limits["cpu_seconds"], limits["file_bytes"])
    try:
        answer = _run(request)
    except MemoryError:
        mib = limits["memory_bytes"] // 2**20
        what = request.get("what", "job")
        answer = {"ok": False, "reason": f"the {what} ran out of memory (limit {mib} MiB)"}
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
