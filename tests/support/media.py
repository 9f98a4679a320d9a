"""Real media files for tests, made on the spot: photos with EXIF GPS and an orientation,
animations, broken and hostile images, audio and video in every container the server accepts
(ffmpeg's ``lavfi`` sources: a test pattern and a sine tone), a WebM as a browser's
MediaRecorder writes it, and documents.

Every function writes ``path`` and returns it. Images come from Pillow; audio and video need
ffmpeg (:func:`require_ffmpeg` skips a test without it, or fails it when ``CI`` is set).

Photos carry a marker to check their orientation with: the stored picture's top-left
quarter is :data:`MARK` and the rest :data:`FIELD`, so after an EXIF orientation is applied
the marker is in the corner :func:`marked_corner` names.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import pytest
from PIL import Image

__all__ = [
    "AUDIO_FORMATS",
    "FIELD",
    "GPS",
    "MARK",
    "VIDEO_FORMATS",
    "audio",
    "bomb_png",
    "gif",
    "html_as_png",
    "jpeg",
    "marked_corner",
    "mpo",
    "png",
    "recorder_webm",
    "require_ffmpeg",
    "text",
    "truncated_jpeg",
    "video",
    "webp",
    "zip_archive",
]

MARK = (220, 20, 60)
FIELD = (30, 144, 255)
# Seoul City Hall, as a phone writes it: degrees, minutes, seconds.
GPS = {1: "N", 2: (37.0, 33.0, 58.0), 3: "E", 4: (126.0, 58.0, 40.0)}
_GPS_IFD = 0x8825
_ORIENTATION = 0x0112
_XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="37,33.97N"/>'
    b"</rdf:RDF></x:xmpmeta>"
)

# Container -> (ffmpeg muxer, audio codec) for :func:`audio`.
AUDIO_FORMATS: dict[str, tuple[str, str]] = {
    "m4a": ("ipod", "aac"),
    "ogg": ("ogg", "libopus"),
    "webm": ("webm", "libopus"),
    "mp3": ("mp3", "libmp3lame"),
    "wav": ("wav", "pcm_s16le"),
    "aac": ("adts", "aac"),
}
# Container -> (ffmpeg muxer, video codec, audio codec) for :func:`video`.
VIDEO_FORMATS: dict[str, tuple[str, str, str]] = {
    "mp4": ("mp4", "libx264", "aac"),
    "mov": ("mov", "libx264", "aac"),
    "3gp": ("3gp", "libx264", "aac"),
    "webm": ("webm", "libvpx", "libopus"),
}
_FAST = {"libx264": ["-preset", "ultrafast"], "libvpx": ["-deadline", "realtime", "-cpu-used", "8"]}


def require_ffmpeg() -> tuple[str, str]:
    """The paths of ffmpeg and ffprobe; skips the test without them (fails it on CI)."""
    found = shutil.which("ffmpeg"), shutil.which("ffprobe")
    if None in found:
        reason = "ffmpeg and ffprobe are not installed (apt-get install ffmpeg)"
        if os.environ.get("CI"):
            pytest.fail(f"ffmpeg is required on CI: {reason}")
        pytest.skip(reason)
    ffmpeg, ffprobe = found
    assert ffmpeg is not None
    assert ffprobe is not None
    return ffmpeg, ffprobe


def _marked(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    im = Image.new(mode, size, FIELD)
    im.paste(MARK, (0, 0, size[0] // 2, size[1] // 2))
    return im


def marked_corner(orientation: int) -> str:
    """Where the marker of a :func:`jpeg` with this EXIF orientation is once the picture is
    shown upright: ``"top-left"``, ``"top-right"``, ``"bottom-left"`` or ``"bottom-right"``."""
    return {
        1: "top-left",
        2: "top-right",
        3: "bottom-right",
        4: "bottom-left",
        5: "top-left",
        6: "top-right",
        7: "bottom-right",
        8: "bottom-left",
    }[orientation]


def _exif(gps: bool, orientation: int | None) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Ieum Test Camera"  # Make
    if orientation is not None:
        exif[_ORIENTATION] = orientation
    if gps:
        exif.get_ifd(_GPS_IFD).update(GPS)
    return exif


def jpeg(
    path: Path,
    size: tuple[int, int] = (640, 480),
    *,
    gps: bool = True,
    orientation: int | None = 6,
    xmp: bool = False,
    icc: bytes | None = None,
    quality: int = 85,
) -> Path:
    """A photo as a phone takes it: EXIF with the camera, GPS coordinates (:data:`GPS`) and an
    orientation (6: held upright, the sensor's picture needs a quarter turn clockwise).
    ``gps=False, orientation=None`` writes a JPEG without EXIF."""
    options: dict[str, object] = {"quality": quality}
    if gps or orientation is not None:
        options["exif"] = _exif(gps, orientation)
    if xmp:
        options["xmp"] = _XMP
    if icc:
        options["icc_profile"] = icc
    _marked(size).save(path, "JPEG", **options)
    return path


def mpo(path: Path, size: tuple[int, int] = (320, 240), *, gps: bool = True) -> Path:
    """A JPEG with a Multi-Picture index and a second picture (as phones store depth maps),
    both pictures with EXIF GPS."""
    first, second = _marked(size), Image.new("RGB", size, FIELD)
    first.save(path, "MPO", save_all=True, append_images=[second], exif=_exif(gps, 1))
    return path


def png(
    path: Path,
    size: tuple[int, int] = (300, 200),
    *,
    exif: bool = False,
    alpha: bool = False,
    animated: bool = False,
) -> Path:
    """A PNG with the orientation marker; ``exif=True`` adds an eXIf chunk with GPS and
    orientation 6, ``alpha=True`` makes it RGBA with a transparent corner, ``animated=True``
    makes it an APNG of three frames (100, 200 and 300 ms)."""
    mode = "RGBA" if alpha else "RGB"
    im = _marked(size, mode)
    if alpha:
        im.paste((0, 0, 0, 0), (size[0] - 10, size[1] - 10, size[0], size[1]))
    options: dict[str, object] = {"exif": _exif(True, 6)} if exif else {}
    if animated:
        others = [Image.new(mode, size, color) for color in (FIELD, (250, 250, 250))]
        options.update(save_all=True, append_images=others, duration=[100, 200, 300], loop=0)
    im.save(path, "PNG", **options)
    return path


def gif(path: Path, size: tuple[int, int] = (120, 80), *, animated: bool = True) -> Path:
    """A GIF; animated: three frames of 100 ms, looping."""
    frames = [Image.new("RGB", size, color) for color in (MARK, FIELD, (250, 250, 250))]
    if not animated:
        frames[0].save(path, "GIF")
        return path
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def webp(
    path: Path,
    size: tuple[int, int] = (300, 200),
    *,
    animated: bool = False,
    exif: bool = False,
    lossless: bool = False,
) -> Path:
    """A WebP; animated: three frames of 100 ms; exif: GPS and orientation 6."""
    options: dict[str, object] = {"lossless": lossless}
    if exif:
        options["exif"] = _exif(True, 6)
    first = _marked(size)
    if not animated:
        first.save(path, "WEBP", **options)
        return path
    others = [Image.new("RGB", size, color) for color in (FIELD, (250, 250, 250))]
    first.save(path, "WEBP", save_all=True, append_images=others, duration=100, loop=0, **options)
    return path


def truncated_jpeg(path: Path, size: tuple[int, int] = (640, 480)) -> Path:
    """A JPEG cut in the middle of its picture data (an upload that stopped half-way)."""
    buffer = io.BytesIO()
    _marked(size).save(buffer, "JPEG", quality=90)
    path.write_bytes(buffer.getvalue()[: buffer.tell() // 2])
    return path


def bomb_png(path: Path, size: tuple[int, int] = (30_000, 30_000), *, rgb: bool = False) -> Path:
    """A valid, all-black PNG of ``size`` in a file of a few hundred KiB at most: one bit a
    pixel (Pillow decodes it to a byte a pixel: 900 MB at the default size), or with
    ``rgb=True`` eight bits a channel (four bytes a pixel once decoded)."""
    width, height = size
    depth, color_type, row_bytes = (8, 2, 3 * width) if rgb else (1, 0, (width + 7) // 8)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    packer = zlib.compressobj(9)
    row = bytes(1 + row_bytes)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    head = b"\x89PNG\r\n\x1a\n"
    path.write_bytes(head + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def html_as_png(path: Path) -> Path:
    """A web page, named and declared as a PNG (a stored-XSS attempt)."""
    path.write_text("<!doctype html><html><body><script>alert(document.cookie)</script></body>")
    return path


def text(path: Path, content: str = "안녕하세요, hello\n") -> Path:
    """A UTF-8 text file."""
    path.write_text(content, encoding="utf-8")
    return path


def zip_archive(path: Path, members: dict[str, bytes] | None = None) -> Path:
    """A ZIP archive (one small text member by default)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in (members or {"hello.txt": b"hello\n"}).items():
            archive.writestr(name, data)
    return path


def _ffmpeg(*args: str) -> None:
    ffmpeg, _ = require_ffmpeg()
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-y", *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)


def _tone(seconds: float) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]


def _pattern(seconds: float, size: tuple[int, int], rate: int) -> list[str]:
    source = f"testsrc2=size={size[0]}x{size[1]}:rate={rate}:duration={seconds}"
    return ["-f", "lavfi", "-i", source]


def audio(path: Path, seconds: float = 2.0, fmt: str = "m4a", *, cover: bool = False) -> Path:
    """A sine tone of ``seconds`` in ``fmt`` (a key of :data:`AUDIO_FORMATS`); ``cover=True``
    (m4a) adds a cover picture, as music files carry (an attached-picture video stream)."""
    muxer, codec = AUDIO_FORMATS[fmt]
    inputs = _tone(seconds)
    maps: list[str] = []
    if cover:
        picture = path.with_name(path.stem + ".cover.jpg")
        jpeg(picture, (64, 64), gps=False, orientation=None)
        inputs += ["-i", str(picture)]
        maps = ["-map", "0", "-map", "1", "-c:v", "copy", "-disposition:v:0", "attached_pic"]
    _ffmpeg(*inputs, *maps, "-c:a", codec, "-f", muxer, str(path))
    return path


def video(
    path: Path,
    seconds: float = 2.0,
    fmt: str = "mp4",
    *,
    size: tuple[int, int] = (320, 240),
    rate: int = 25,
    sound: bool = True,
    rotate: int = 0,
) -> Path:
    """A test pattern (with a sine tone unless ``sound=False``) of ``seconds`` in ``fmt`` (a
    key of :data:`VIDEO_FORMATS`). ``rotate`` (mp4, mov: 90, 180, 270) stores a display
    rotation, as phones do for a video shot upright: shown, it is ``size`` turned."""
    muxer, vcodec, acodec = VIDEO_FORMATS[fmt]
    inputs = _pattern(seconds, size, rate) + (_tone(seconds) if sound else [])
    codecs = ["-c:v", vcodec, *_FAST.get(vcodec, []), "-pix_fmt", "yuv420p"]
    codecs += ["-c:a", acodec] if sound else []
    if not rotate:
        _ffmpeg(*inputs, *codecs, "-f", muxer, str(path))
        return path
    # ffmpeg 5 writes a stored rotation only when it copies the streams
    plain = path.with_name(path.stem + ".plain." + fmt)
    _ffmpeg(*inputs, *codecs, "-f", muxer, str(plain))
    _ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", f"rotate={rotate}", str(path))
    plain.unlink()
    return path


def recorder_webm(path: Path, seconds: float = 2.0, *, with_video: bool = True) -> Path:
    """A WebM as Chrome's MediaRecorder writes it: a live stream, written front to back, with
    no Duration in its header (and no Cues). Audio only with ``with_video=False``."""
    ffmpeg, _ = require_ffmpeg()
    inputs = (_pattern(seconds, (320, 240), 25) if with_video else []) + _tone(seconds)
    codecs = (["-c:v", "libvpx", *_FAST["libvpx"]] if with_video else []) + ["-c:a", "libopus"]
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-v", "error", *inputs, *codecs, "-f", "webm"]
    # to a pipe, the muxer cannot go back to the header to write what it learnt at the end
    done = subprocess.run([*cmd, "pipe:1"], check=True, capture_output=True, timeout=300)
    path.write_bytes(done.stdout)
    return path
