"""Audio and video jobs, run in the child process (``_worker``): the check with ffprobe and the
video thumbnail with ffmpeg (one frame as PNG on a pipe, made WebP with Pillow, so any ffmpeg
build will do).

Both programs open the file with ``-format_whitelist`` set to the declared type's demuxer, so
ffmpeg's probing can never pick another of its few hundred demuxers for an upload, and with
``-protocol_whitelist file``, so nothing in a file (a playlist, a reference to other media)
makes them open another file's protocol, or a URL.
"""

from __future__ import annotations

import io
import json
import math
import re
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FAMILIES", "check", "thumbnail"]

# Declared type -> ffmpeg's name of the demuxer that must read it (as ffprobe reports it).
_MOV = "mov,mp4,m4a,3gp,3g2,mj2"
_MATROSKA = "matroska,webm"
FAMILIES: dict[str, str] = {
    "audio/mp4": _MOV,
    "video/mp4": _MOV,
    "video/3gpp": _MOV,
    "video/quicktime": _MOV,
    "audio/webm": _MATROSKA,
    "video/webm": _MATROSKA,
    "audio/ogg": "ogg",
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
    "audio/aac": "aac",
}
# ffprobe's JSON for a file of a few streams is a few KiB; tags could grow it, not this far.
PROBE_MAX = 2 * 2**20
# One PNG frame of at most thumbnail_px on a side.
FRAME_MAX = 16 * 2**20
_STDERR_KEPT = 4096
# Decoding threads: few, so a video's memory does not grow with the machine's core count.
_THREADS = "2"
_PREFIX = re.compile(r"^\[[^\]]+ @ 0x[0-9a-f]+\] ")
_NOT_ON_WHITELIST = re.compile(r"\[(?P<found>[\w,]+) @ 0x[0-9a-f]+\] Format not on whitelist")


class _ToolMissing(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Output:
    returncode: int
    stdout: bytes
    overflow: bool
    stderr: str


def _inputs(path: str, family: str) -> list[str]:
    return ["-protocol_whitelist", "file", "-format_whitelist", family, "-i", f"file:{path}"]


def _capture(cmd: list[str], limit: int) -> _Output:
    """Run a program, keeping at most ``limit`` bytes of its output (more: it is killed)."""
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err
            )
        except OSError as exc:
            raise _ToolMissing(f"{cmd[0]} could not be started: {exc.strerror}") from None
        assert proc.stdout is not None
        with proc:
            data = proc.stdout.read(limit + 1)
            if overflow := len(data) > limit:
                proc.kill()
        err.seek(0)
        stderr = err.read(_STDERR_KEPT).decode("utf-8", "replace")
    return _Output(proc.returncode, data[:limit], overflow, stderr)


def _complaint(out: _Output, program: str, path: str) -> str:
    """Why ffmpeg or ffprobe failed: its last word, without the path of the file or the
    addresses of its contexts; or the signal that ended it."""
    if out.returncode < 0:
        try:
            name = signal.Signals(-out.returncode).name
        except ValueError:
            name = f"signal {-out.returncode}"
        return f"{Path(program).name} was killed by {name}"
    said = []
    for raw in out.stderr.splitlines():
        line = _PREFIX.sub("", raw).replace(f"file:{path}: ", "").strip()
        if line and line not in said:
            said.append(line.replace(path, "the file"))
    return "; ".join(said[-3:])[:300] or "no reason given"


def _seconds(value: object) -> float | None:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) else None


def _packet_span(ffprobe: str, path: str, family: str) -> float | None:
    """The time from the first packet to the end of the last, for a file whose header has no
    duration (Chrome's MediaRecorder writes WebM as a live stream: no Duration, no Cues).
    ffprobe lists every packet; only the extremes are kept."""
    cmd = [
        ffprobe,
        *("-v", "error", "-hide_banner"),
        *_inputs(path, family),
        *("-show_entries", "packet=pts_time,duration_time", "-of", "compact=p=0"),
    ]
    start, end = math.inf, -math.inf
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
    except OSError as exc:
        raise _ToolMissing(f"{ffprobe} could not be started: {exc.strerror}") from None
    assert proc.stdout is not None
    with proc:
        while line := proc.stdout.readline(256):
            fields = dict(item.partition("=")[::2] for item in line.decode().strip().split("|"))
            pts = _seconds(fields.get("pts_time"))
            if pts is None:
                continue
            start = min(start, pts)
            end = max(end, pts + (_seconds(fields.get("duration_time")) or 0.0))
    if end == -math.inf:
        return None
    return end - max(start, 0.0)  # a codec's negative start (Opus pre-skip) is not played


def _display_size(stream: dict[str, Any]) -> tuple[int | None, int | None]:
    width, height = stream.get("width"), stream.get("height")
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        return None, None
    num, _, den = str(stream.get("sample_aspect_ratio", "")).partition(":")
    if num.isdigit() and den.isdigit() and int(num) > 0 and int(den) > 0:
        width = max(1, round(width * int(num) / int(den)))
    rotation: object = stream.get("tags", {}).get("rotate", 0)
    for side_data in stream.get("side_data_list", []):
        rotation = side_data.get("rotation", rotation)
    turned = _seconds(rotation)
    if turned is not None and round(abs(turned)) % 180 == 90:
        width, height = height, width
    return width, height


def _verdict(request: dict[str, Any], probe: dict[str, Any]) -> dict[str, Any]:
    content_type, kind = request["content_type"], request["kind"]
    family = FAMILIES[content_type]
    found = probe.get("format", {}).get("format_name")
    if found != family:
        return {"ok": False, "reason": f"the file is {found or 'unknown'}, not {content_type}"}
    streams = [s for s in probe.get("streams", []) if isinstance(s, dict)]
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    pictures = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
    ]
    refusal = None
    if kind == "AUDIO" and not audio:
        refusal = f"the file has no audio stream: it is not {content_type}"
    elif kind == "AUDIO" and pictures:
        refusal = f"the file has a video stream: it is a video, not {content_type}"
    elif kind == "VIDEO" and not pictures:
        refusal = f"the file has no video stream: it is not {content_type}"
    if refusal:
        return {"ok": False, "reason": refusal}
    duration = _seconds(probe.get("format", {}).get("duration"))
    if duration is None:
        duration = _packet_span(request["ffprobe"], request["source"], family)
    if duration is None or duration <= 0:
        return {"ok": False, "reason": f"the {kind.lower()} has no duration"}
    width, height = _display_size(pictures[0]) if kind == "VIDEO" else (None, None)
    return {
        "ok": True,
        "duration_ms": round(duration * 1000),
        "width": width,
        "height": height,
        "video_stream": pictures[0].get("index") if kind == "VIDEO" else None,
    }


def check(request: dict[str, Any]) -> dict[str, Any]:
    """Which container, which streams, how long: from ffprobe's reading of the whole header
    (and, when it has no duration, of every packet's timestamp)."""
    path, content_type = request["source"], request["content_type"]
    family = FAMILIES[content_type]
    cmd = [
        request["ffprobe"],
        *("-v", "error", "-hide_banner"),
        *_inputs(path, family),
        *("-show_format", "-show_streams", "-of", "json"),
    ]
    try:
        out = _capture(cmd, PROBE_MAX)
        if out.overflow:
            return {"ok": False, "reason": "the file describes too many streams or tags"}
        if out.returncode != 0:
            if found := _NOT_ON_WHITELIST.search(out.stderr):
                return {"ok": False, "reason": f"the file is {found['found']}, not {content_type}"}
            why = _complaint(out, request["ffprobe"], path)
            return {"ok": False, "reason": f"the file is not a valid {content_type}: {why}"}
        try:
            probe = json.loads(out.stdout)
        except ValueError:
            probe = None
        if not isinstance(probe, dict):
            return {"ok": False, "reason": f"the file is not a valid {content_type}: no report"}
        return _verdict(request, probe)
    except _ToolMissing as exc:
        return {"ok": False, "tool": True, "reason": str(exc)}


def _frame(request: dict[str, Any], at: float) -> _Output:
    px = request["thumbnail_px"]
    fit = (
        "scale=iw*sar:ih,setsar=1,"  # square pixels first: the frame as it is displayed
        f"scale='min({px},iw)':'min({px},ih)':force_original_aspect_ratio=decrease"
    )
    cmd = [
        request["ffmpeg"],
        *("-nostdin", "-hide_banner", "-v", "error", "-threads", _THREADS),
        *("-ss", f"{at:.3f}"),
        *_inputs(request["source"], FAMILIES[request["content_type"]]),
        *("-map", f"0:{request['video_stream']}", "-frames:v", "1", "-vf", fit),
        *("-an", "-sn", "-dn", "-f", "image2pipe", "-c:v", "png", "pipe:1"),
    ]
    return _capture(cmd, FRAME_MAX)


def thumbnail(request: dict[str, Any]) -> dict[str, Any]:
    """One frame at ``at`` seconds (ffmpeg turns it upright), fitted into a square of
    ``thumbnail_px`` without enlarging it, as WebP."""
    from PIL import Image

    from ieum_chat.uploads._images import THUMBNAIL_QUALITY, write

    try:
        out = _frame(request, request["at"])
        if out.returncode == 0 and not out.stdout and request["at"] > 0:
            out = _frame(request, 0.0)  # a seek past the last frame yields none
    except _ToolMissing as exc:
        return {"ok": False, "tool": True, "reason": str(exc)}
    if out.returncode != 0 or out.overflow or not out.stdout:
        why = _complaint(out, request["ffmpeg"], request["source"])
        return {"ok": False, "reason": f"ffmpeg made no frame: {why}"}
    with Image.open(io.BytesIO(out.stdout), formats=["PNG"]) as frame:
        write(frame, request["out"], "WEBP", quality=THUMBNAIL_QUALITY)
        return {"ok": True, "width": frame.width, "height": frame.height}
