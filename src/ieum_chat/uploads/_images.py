"""Image jobs, run in the child process (``_worker``) with Pillow: the check, which decodes the
whole image and writes a copy without EXIF or XMP when it carries either, and the thumbnail.

Decompression bombs: ``Image.MAX_IMAGE_PIXELS`` is the configured limit and Pillow's warning
for an image past it is raised as an error, so such an image is refused when its header is
read, before a pixel is decoded. Only the declared format's decoder is tried.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, ImageFile, ImageSequence, JpegImagePlugin, UnidentifiedImageError

__all__ = ["FORMATS", "check", "thumbnail", "write"]

# Declared type -> (Pillow's decoder, the formats it may report). A JPEG with a Multi-Picture
# index (many phones' photos: a depth map, an HDR gain map) opens as MPO.
FORMATS: dict[str, tuple[str, frozenset[str]]] = {
    "image/jpeg": ("JPEG", frozenset({"JPEG", "MPO"})),
    "image/png": ("PNG", frozenset({"PNG"})),
    "image/gif": ("GIF", frozenset({"GIF"})),
    "image/webp": ("WEBP", frozenset({"WEBP"})),
}
JPEG_QUALITY = 90
THUMBNAIL_QUALITY = 80
# What a rewritten copy keeps of a decoder's ``info``: what the picture looks like and how an
# animation plays, nothing about where or by what it was taken.
_KEPT_INFO = frozenset({"icc_profile", "transparency", "loop", "duration", "background"})
# Where Pillow puts EXIF and XMP, by format (PNG: eXIf and iTXt chunks, or the "Raw profile"
# text chunks ImageMagick and exiftool write).
_METADATA_KEYS = (
    "exif",
    "xmp",
    "XML:com.adobe.xmp",
    "Raw profile type exif",
    "Raw profile type APP1",
    "Raw profile type xmp",
)
# Modes Pillow resamples with any filter (a palette image would only get NEAREST).
_RESAMPLED_AS_IS = frozenset({"RGB", "RGBA", "L", "LA"})
_ROTATED = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class _Refused(Exception):
    pass


@contextmanager
def _open(path: str, content_type: str, max_pixels: int) -> Iterator[Image.Image]:
    decoder, reported = FORMATS[content_type]
    Image.MAX_IMAGE_PIXELS = max_pixels
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path, formats=[decoder]) as im:
                if im.format not in reported:
                    raise _Refused(f"the file is not {content_type} but {im.format}")
                yield im
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _Refused(
                f"the image has more than {max_pixels:,} pixels (refused as a decompression bomb)"
            ) from None
        except UnidentifiedImageError:
            raise _Refused(f"the file is not a valid {content_type}") from None


def write(im: Image.Image, out: str, fmt: str, **options: Any) -> None:
    """Encode in memory, then write with Python's file object. Pillow's encoders write to a
    file descriptor themselves and do not notice a short write: a file cut by the size limit
    (or a full disk) would be kept as if whole. Python retries the rest and fails loudly."""
    buffer = io.BytesIO()
    im.save(buffer, fmt, **options)
    with open(out, "wb") as fh:
        fh.write(buffer.getbuffer())


def _frames(im: Image.Image) -> int:
    # MPO's other pictures are views of the photo (depth, gain map), not frames to play
    return 1 if im.format == "MPO" else getattr(im, "n_frames", 1)


def _orientation(im: Image.Image) -> int:
    value = im.getexif().get(ExifTags.Base.Orientation, 1)
    return value if isinstance(value, int) and value in range(1, 9) else 1


def _has_metadata(im: Image.Image) -> bool:
    return bool(im.getexif()) or any(im.info.get(key) for key in _METADATA_KEYS)


def _webp_lossless(path: str) -> bool:
    """Whether a WebP's (first) picture is VP8L, so the copy is lossless too."""
    data = Path(path).read_bytes()
    offset, end = 12, len(data)
    while offset + 8 <= end:
        fourcc, size = data[offset : offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        if fourcc in (b"VP8L", b"VP8 "):
            return fourcc == b"VP8L"
        if fourcc == b"ANMF":  # frame header (16 bytes), then its own ALPH/VP8/VP8L chunks
            offset, end = offset + 8 + 16, min(end, offset + 8 + size)
            continue
        offset += 8 + size + (size & 1)
    return False


def _save_options(im: Image.Image, source: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if icc := im.info.get("icc_profile"):
        options["icc_profile"] = icc
    if im.format in ("JPEG", "MPO"):
        options.update(
            quality=JPEG_QUALITY,
            subsampling=JpegImagePlugin.get_sampling(im),
            progressive=bool(im.info.get("progressive")),
        )
    elif im.format == "WEBP":
        lossless = _webp_lossless(source)
        options.update(lossless=lossless, quality=100 if lossless else JPEG_QUALITY)
    return options


def _rewrite(
    im: Image.Image, source: str, out: str, orientation: int, durations: list[int]
) -> None:
    """A copy with the orientation applied and no metadata but the colour profile, in the
    same format (an MPO as a plain JPEG: the primary picture only)."""
    options = _save_options(im, source)
    fmt = "JPEG" if im.format == "MPO" else im.format
    assert fmt is not None
    frames = _frames(im)
    method = _TRANSPOSE.get(orientation)
    if frames == 1:
        im.seek(0)
        copy = im.transpose(method) if method is not None else im.copy()
        copy.info = {k: v for k, v in im.info.items() if k in _KEPT_INFO}
        write(copy, out, fmt, **options)
        return
    options.update(save_all=True, duration=durations, loop=im.info.get("loop", 0))
    if fmt == "PNG":  # Pillow hands out whole composed frames: each replaces the last
        options.update(disposal=0, blend=0)
    im.seek(0)
    if method is None:  # the encoder seeks through the frames itself, one in memory at a time
        write(im, out, fmt, **options)
        return
    turned = [frame.transpose(method) for frame in ImageSequence.Iterator(im)]
    turned[0].info = {k: v for k, v in im.info.items() if k in _KEPT_INFO}
    write(turned[0], out, fmt, append_images=turned[1:], **options)


def check(request: dict[str, Any]) -> dict[str, Any]:
    """Decode every frame; report the size as displayed; write ``out`` without EXIF/XMP when
    there was some (never for GIF, which is kept as it is)."""
    source, content_type = request["source"], request["content_type"]
    try:
        with _open(source, content_type, request["max_pixels"]) as im:
            durations = []  # a frame's duration is known once it is decoded (WebP)
            for index in range(_frames(im)):
                im.seek(index)
                im.load()
                durations.append(im.info.get("duration", 0))
            im.seek(0)
            orientation = _orientation(im)
            width, height = im.size
            if orientation in _ROTATED:
                width, height = height, width
            rewritten = im.format != "GIF" and (_has_metadata(im) or im.format == "MPO")
            if rewritten:
                _rewrite(im, source, request["out"], orientation, durations)
    except _Refused as exc:
        return {"ok": False, "reason": str(exc)}
    except MemoryError:
        raise
    except OSError as exc:
        if exc.errno is not None:  # the system's (a full disk), not a decoder's: a failure
            raise
        return {"ok": False, "reason": f"the file is not a valid {content_type}: {exc}"}
    except Exception as exc:  # any decoder error: the bytes are not a whole image of the type
        return {"ok": False, "reason": f"the file is not a valid {content_type}: {exc}"}
    return {"ok": True, "width": width, "height": height, "rewritten": rewritten}


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or im.has_transparency_data


def thumbnail(request: dict[str, Any]) -> dict[str, Any]:
    """The first frame, upright, fitted into a square of ``thumbnail_px`` (never enlarged), as
    WebP. JPEGs are decoded at a reduced scale (``draft``) when the thumbnail is much smaller."""
    px = request["thumbnail_px"]
    try:
        with _open(request["source"], request["content_type"], request["max_pixels"]) as im:
            if im.format in ("JPEG", "MPO"):
                im.draft("RGB", (px, px))
            orientation = _orientation(im)
            icc = im.info.get("icc_profile")
            mode = "RGBA" if _has_alpha(im) else "RGB"
            if im.mode in _RESAMPLED_AS_IS:  # shrink first: one full-size picture in memory
                im.thumbnail((px, px), Image.Resampling.LANCZOS)
                thumb = im.convert(mode)
            else:  # palette, CMYK, 16 bits: converted before, to be resampled at all
                thumb = im.convert(mode)
                thumb.thumbnail((px, px), Image.Resampling.LANCZOS)
    except _Refused as exc:
        return {"ok": False, "reason": str(exc)}
    if (method := _TRANSPOSE.get(orientation)) is not None:
        thumb = thumb.transpose(method)
    write(thumb, request["out"], "WEBP", quality=THUMBNAIL_QUALITY, icc_profile=icc or None)
    return {"ok": True, "width": thumb.width, "height": thumb.height}
