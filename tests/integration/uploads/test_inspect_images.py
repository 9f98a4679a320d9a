"""Images through the inspector: every accepted type checked and measured; photos lose their
EXIF (GPS above all) and XMP in a copy turned upright; thumbnails; and each bad image refused
with a reason a developer can act on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from ieum_chat.media_types import Kind
from ieum_chat.uploads.inspect import Inspection, Inspector, MediaLimits, MediaRejected
from tests.integration.uploads.conftest import files_in
from tests.support import media

# Where to look for the marker in a picture of a given size: the middle of each quarter.
_CORNERS: dict[str, Callable[[int, int], tuple[int, int]]] = {
    "top-left": lambda w, h: (w // 4, h // 4),
    "top-right": lambda w, h: (3 * w // 4, h // 4),
    "bottom-left": lambda w, h: (w // 4, 3 * h // 4),
    "bottom-right": lambda w, h: (3 * w // 4, 3 * h // 4),
}
_GPS_IFD = 0x8825


def _close(pixel: object, color: tuple[int, int, int]) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= 24 for a, b in zip(pixel[:3], color, strict=True))


def _marker_at(image: Image.Image) -> str:
    rgb = image.convert("RGB")
    return next(
        corner
        for corner, spot in _CORNERS.items()
        if _close(rgb.getpixel(spot(*rgb.size)), media.MARK)
    )


def _assert_thumbnail(result: Inspection, shown: tuple[int, int]) -> Image.Image:
    assert result.thumbnail is not None
    assert result.thumbnail.name.endswith(".thumb.webp")
    thumb = Image.open(result.thumbnail)
    assert thumb.format == "WEBP"
    assert max(thumb.size) <= 320
    scale = min(1.0, 320 / max(shown))
    assert thumb.size == (round(shown[0] * scale), round(shown[1] * scale))
    return thumb


def _assert_no_metadata(image: Image.Image) -> None:
    exif = image.getexif()
    assert not exif
    assert not exif.get_ifd(_GPS_IFD)
    for key in ("exif", "xmp", "XML:com.adobe.xmp", "Raw profile type exif", "comment"):
        assert key not in image.info, key


@pytest.mark.parametrize("orientation", range(1, 9))
async def test_a_photo_loses_gps_and_is_turned_upright(
    inspector: Inspector, tmp_path: Path, workdir: Path, orientation: int
) -> None:
    source = media.jpeg(tmp_path / "photo.jpg", (640, 480), orientation=orientation)
    shown = (480, 640) if orientation >= 5 else (640, 480)

    result = await inspector.inspect(source, "image/jpeg", workdir)

    assert (result.kind, result.content_type) == (Kind.IMAGE, "image/jpeg")
    assert (result.width, result.height) == shown
    assert result.file != source
    assert result.file.parent == workdir
    assert result.size == result.file.stat().st_size
    assert result.duration_ms is None
    with Image.open(result.file) as copy:
        assert copy.format == "JPEG"
        assert copy.size == shown
        _assert_no_metadata(copy)
        assert _marker_at(copy) == media.marked_corner(orientation)
    with Image.open(source) as original:  # the upload itself is left as it was
        assert original.getexif().get_ifd(_GPS_IFD)
    thumb = _assert_thumbnail(result, shown)
    assert _marker_at(thumb) == media.marked_corner(orientation)


async def test_xmp_alone_is_removed_too(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = media.jpeg(tmp_path / "x.jpg", gps=False, orientation=None, xmp=True)
    with Image.open(source) as original:
        assert b"GPSLatitude" in original.info["xmp"]

    result = await inspector.inspect(source, "image/jpeg", workdir)

    assert result.file != source
    with Image.open(result.file) as copy:
        _assert_no_metadata(copy)
    assert b"GPSLatitude" not in result.file.read_bytes()


async def test_the_colour_profile_is_kept(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = media.jpeg(tmp_path / "icc.jpg", icc=icc)

    result = await inspector.inspect(source, "image/jpeg", workdir)

    with Image.open(result.file) as copy:
        assert copy.info.get("icc_profile") == icc
        _assert_no_metadata(copy)


async def test_a_photo_without_exif_is_kept_as_uploaded(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = media.jpeg(tmp_path / "plain.jpg", (800, 600), gps=False, orientation=None)

    result = await inspector.inspect(source, "image/jpeg", workdir)

    assert result.file == source
    assert (result.size, result.width, result.height) == (source.stat().st_size, 800, 600)
    assert not (workdir / "plain.clean.jpg").exists()
    _assert_thumbnail(result, (800, 600))


async def test_a_multi_picture_jpeg_keeps_only_its_primary_picture(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = media.mpo(tmp_path / "mpo.jpg")
    with Image.open(source) as original:
        assert (original.format, getattr(original, "n_frames", 1)) == ("MPO", 2)

    result = await inspector.inspect(source, "image/jpeg", workdir)

    assert (result.width, result.height) == (320, 240)
    with Image.open(result.file) as copy:
        assert copy.format == "JPEG"
        assert getattr(copy, "n_frames", 1) == 1
        _assert_no_metadata(copy)
    assert result.file.read_bytes().count(b"\xff\xd8\xff") == 1


async def test_a_png_with_exif_keeps_its_transparency(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = media.png(tmp_path / "shot.png", (300, 200), exif=True, alpha=True)

    result = await inspector.inspect(source, "image/png", workdir)

    assert (result.width, result.height) == (200, 300)  # orientation 6
    with Image.open(result.file) as copy:
        assert copy.format == "PNG"
        assert copy.mode == "RGBA"
        _assert_no_metadata(copy)
        assert _marker_at(copy) == "top-right"
        alpha = copy.getchannel("A")
        assert alpha.getextrema() == (0, 255)
    thumb = _assert_thumbnail(result, (200, 300))
    assert thumb.mode == "RGBA"


async def test_an_animated_png_with_exif_keeps_its_frames(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = media.png(tmp_path / "anim.png", (60, 40), exif=True, animated=True)

    result = await inspector.inspect(source, "image/png", workdir)

    assert (result.width, result.height) == (40, 60)
    with Image.open(result.file) as copy:
        assert getattr(copy, "n_frames", 1) == 3
        _assert_no_metadata(copy)
        assert _marker_at(copy) == "top-right"
        durations = []
        for index in range(3):
            copy.seek(index)
            durations.append(copy.info["duration"])
        assert durations == [100, 200, 300]


async def test_a_png_without_exif_is_kept(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = media.png(tmp_path / "small.png", (120, 90))

    result = await inspector.inspect(source, "image/png", workdir)

    assert (result.file, result.width, result.height) == (source, 120, 90)
    _assert_thumbnail(result, (120, 90))  # never enlarged


@pytest.mark.parametrize("animated", [True, False])
async def test_a_gif_is_kept_as_it_is(
    inspector: Inspector, tmp_path: Path, workdir: Path, animated: bool
) -> None:
    source = media.gif(tmp_path / "a.gif", (480, 360), animated=animated)

    result = await inspector.inspect(source, "image/gif", workdir)

    assert (result.file, result.width, result.height) == (source, 480, 360)
    thumb = _assert_thumbnail(result, (480, 360))
    assert getattr(thumb, "n_frames", 1) == 1  # the first frame
    assert _close(thumb.convert("RGB").getpixel((10, 10)), media.MARK)


async def test_an_animated_webp_with_exif_keeps_its_frames(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = media.webp(tmp_path / "anim.webp", (300, 200), animated=True, exif=True)

    result = await inspector.inspect(source, "image/webp", workdir)

    assert (result.width, result.height) == (200, 300)
    with Image.open(result.file) as copy:
        assert copy.format == "WEBP"
        assert getattr(copy, "n_frames", 1) == 3
        _assert_no_metadata(copy)
        assert _marker_at(copy) == "top-right"
        durations = []
        for index in range(3):
            copy.seek(index)
            copy.load()
            durations.append(copy.info["duration"])
        assert durations == [100, 100, 100]
    _assert_thumbnail(result, (200, 300))


async def test_a_lossless_webp_stays_lossless(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = media.webp(tmp_path / "ll.webp", (300, 200), exif=True, lossless=True)

    result = await inspector.inspect(source, "image/webp", workdir)

    assert b"VP8L" in result.file.read_bytes()[:64]
    with Image.open(source) as original, Image.open(result.file) as copy:
        _assert_no_metadata(copy)
        upright = original.transpose(Image.Transpose.ROTATE_270).convert("RGB")
        assert copy.convert("RGB").tobytes() == upright.tobytes()


async def test_a_plain_webp_is_kept(inspector: Inspector, tmp_path: Path, workdir: Path) -> None:
    source = media.webp(tmp_path / "plain.webp", (640, 400))

    result = await inspector.inspect(source, "image/webp", workdir)

    assert (result.file, result.width, result.height) == (source, 640, 400)
    _assert_thumbnail(result, (640, 400))


async def test_a_large_photo_gets_a_small_thumbnail(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = media.jpeg(tmp_path / "big.jpg", (4000, 3000), orientation=6)

    result = await inspector.inspect(source, "image/jpeg", workdir)

    assert (result.width, result.height) == (3000, 4000)
    assert result.thumbnail == workdir / "big.thumb.webp"
    _assert_thumbnail(result, (3000, 4000))


async def test_a_web_page_declared_as_png_is_refused(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = media.html_as_png(tmp_path / "page.png")

    with pytest.raises(MediaRejected) as refused:
        await inspector.inspect(source, "image/png", workdir)

    assert (
        refused.value.detail == "the file is not image/png: its first bytes are those of text/plain"
    )


async def test_a_png_declared_as_jpeg_is_refused(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = media.png(tmp_path / "p.jpg")

    with pytest.raises(MediaRejected, match=r"the file is not image/jpeg: .* image/png"):
        await inspector.inspect(source, "image/jpeg", workdir)


async def test_a_truncated_jpeg_is_refused(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = media.truncated_jpeg(tmp_path / "cut.jpg")

    with pytest.raises(MediaRejected, match="not a valid image/jpeg: image file is truncated"):
        await inspector.inspect(source, "image/jpeg", workdir)
    assert files_in(workdir) == []


async def test_a_decompression_bomb_is_refused_from_its_header(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = media.bomb_png(tmp_path / "bomb.png")
    assert source.stat().st_size < 200 * 1024

    with pytest.raises(MediaRejected) as refused:
        await inspector.inspect(source, "image/png", workdir)

    assert refused.value.detail == (
        "the image has more than 89,478,485 pixels (refused as a decompression bomb)"
    )


async def test_past_the_pixel_limit_is_a_bomb_too(
    tools: tuple[str, str], tmp_path: Path, workdir: Path
) -> None:
    # between the limit and twice it Pillow only warns: the warning must refuse as well
    source = media.png(tmp_path / "p.png", (100, 100))
    inspector = Inspector(MediaLimits(max_pixels=7_000))

    with pytest.raises(MediaRejected, match="more than 7,000 pixels"):
        await inspector.inspect(source, "image/png", workdir)


async def test_an_empty_file_is_refused(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = tmp_path / "empty.jpg"
    source.touch()

    with pytest.raises(MediaRejected) as refused:
        await inspector.inspect(source, "image/jpeg", workdir)

    assert refused.value.detail == "the file is empty"


async def test_a_type_outside_the_table_is_refused(
    inspector: Inspector, tmp_path: Path, workdir: Path
) -> None:
    source = media.html_as_png(tmp_path / "page.html")

    with pytest.raises(MediaRejected, match="text/html is not a type we accept"):
        await inspector.inspect(source, "text/html", workdir)
