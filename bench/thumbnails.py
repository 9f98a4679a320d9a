"""What inspecting an upload costs: a 12-megapixel photo with EXIF (checked, rewritten without
its EXIF, thumbnailed) and a 30 s 1080p video (probed, one frame thumbnailed), each inspected
N times by ``ieum_chat.uploads.inspect.Inspector`` with the default limits.

    python -m bench.thumbnails               # 5 runs of each
    python -m bench.thumbnails --runs 10 --keep /tmp/media

The files are made first (Pillow; ffmpeg's test sources and libx264). Each case is then
measured in a process of its own, so that ``RUSAGE_CHILDREN`` there covers the jobs' processes
(the Python child and the ffmpeg or ffprobe it ran) and nothing else: the peak RSS printed is
the largest of them, the CPU time their sum divided by the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from tests.support.media import GPS, require_ffmpeg, video

from ieum_chat.uploads.inspect import Inspector, MediaLimits

__all__ = ["main", "photo"]

_PHOTO = (4000, 3000)
_VIDEO_SECONDS = 30.0
_VIDEO = (1920, 1080)


def photo(path: Path, size: tuple[int, int] = _PHOTO) -> Path:
    """A JPEG that costs what a phone's photo costs to decode: smooth gradients under sensor
    noise (a few MB at quality 92, not the few KB of a flat picture), with the EXIF a phone
    writes (camera, time, orientation 6, GPS)."""
    gradients = [
        Image.linear_gradient("L").resize(size),
        Image.radial_gradient("L").resize(size),
        Image.linear_gradient("L").rotate(90).resize(size),
    ]
    picture = Image.blend(
        Image.merge("RGB", gradients), Image.effect_noise(size, 40).convert("RGB"), 0.3
    )
    exif = Image.Exif()
    exif.update({0x010F: "Ieum", 0x0110: "Bench Phone", 0x0132: "2025:05:01 12:00:00", 0x0112: 6})
    exif.get_ifd(0x8825).update(GPS)
    picture.save(path, "JPEG", quality=92, exif=exif)
    return path


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "| " + " | ".join((first, *rest)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


async def _inspect_runs(source: Path, content_type: str, runs: int) -> dict[str, Any]:
    inspector = Inspector(MediaLimits())
    walls: list[float] = []
    summary: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ieum-bench-") as scratch:
        for run in range(runs):
            started = time.perf_counter()
            result = await inspector.inspect(source, content_type, Path(scratch) / str(run))
            walls.append(time.perf_counter() - started)
            thumb = None
            if result.thumbnail is not None:
                with Image.open(result.thumbnail) as im:
                    thumb = f"{im.width}x{im.height}"
            summary = {
                "shown": f"{result.width}x{result.height}",
                "duration_ms": result.duration_ms,
                "rewritten": result.file != source,
                "thumbnail": thumb,
            }
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        **summary,
        "walls": walls,
        "children_peak_rss_kib": usage.ru_maxrss,
        "children_cpu_s": usage.ru_utime + usage.ru_stime,
    }


def _measure(source: Path, content_type: str, runs: int) -> dict[str, Any]:
    """One case, in a process of its own (see the module's docstring)."""
    cmd = [
        sys.executable,
        "-m",
        "bench.thumbnails",
        "--measure",
        content_type,
        str(source),
        "--runs",
        str(runs),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=3600)
    measured: dict[str, Any] = json.loads(done.stdout)
    return measured


def _row(label: str, source: Path, runs: int, m: dict[str, Any]) -> list[str]:
    walls = m["walls"]
    made = [m["shown"]]
    if m["duration_ms"] is not None:
        made.append(f"{m['duration_ms'] / 1000:.1f} s")
    if m["rewritten"]:
        made.append("EXIF removed")
    made.append(f"thumb {m['thumbnail'] or 'none'}")
    return [
        label,
        f"{source.stat().st_size / 2**20:.1f}",
        str(runs),
        f"{statistics.median(walls):.3f}",
        f"{max(walls):.3f}",
        f"{m['children_peak_rss_kib'] / 1024:.0f}",
        f"{m['children_cpu_s'] / runs:.2f}",
        ", ".join(made),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.thumbnails", description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="inspections of each file")
    parser.add_argument("--keep", type=Path, help="make the files in this folder and keep them")
    parser.add_argument("--measure", nargs=2, metavar=("TYPE", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.measure:
        content_type, source = args.measure
        print(json.dumps(asyncio.run(_inspect_runs(Path(source), content_type, args.runs))))
        return 0
    require_ffmpeg()
    with tempfile.TemporaryDirectory(prefix="ieum-bench-media-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"making a {_PHOTO[0]}x{_PHOTO[1]} photo and a {_VIDEO_SECONDS:g} s 1080p video")
        cases = [
            ("photo 12 MP JPEG", photo(folder / "photo.jpg"), "image/jpeg"),
            (
                "video 30 s 1080p30 H.264+AAC",
                video(folder / "video.mp4", _VIDEO_SECONDS, "mp4", size=_VIDEO, rate=30),
                "video/mp4",
            ),
        ]
        rows = []
        for label, source, content_type in cases:
            print(f"inspecting the {label.split()[0]} {args.runs} times")
            rows.append(_row(label, source, args.runs, _measure(source, content_type, args.runs)))
    header = [
        "file",
        "MiB",
        "runs",
        "median s",
        "max s",
        "children peak RSS MiB",
        "children CPU s/run",
        "result",
    ]
    print(_table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
