"""The one image loader: raster formats only, bounded, upright, full range; every failure an ImageError."""

from __future__ import annotations

import os
import struct
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import ImageError
from engine.images import MAX_SIDE, load_image


def _png(width: int, height: int, body: bytes = b"\x00") -> bytes:
    """A PNG whose header declares ``width`` x ``height`` grey pixels, whatever its (tiny) data holds."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(body)) + chunk(b"IEND", b"")


def test_a_postscript_file_named_png_never_reaches_ghostscript(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "digit.png"
    path.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n0 0 moveto 28 28 lineto stroke\nshowpage\n")

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"started a program: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    monkeypatch.setattr(subprocess, "check_call", no_subprocess)
    with pytest.raises(ImageError, match=r"digit\.png: not an image in a format Digit Studio reads"):
        load_image(path)


@pytest.mark.parametrize("text", ["%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", "<svg xmlns='http://www.w3.org/2000/svg'/>"])
def test_documents_are_not_images(tmp_path: Path, text: str) -> None:
    path = tmp_path / "doc.png"
    path.write_text(text)
    with pytest.raises(ImageError, match="not an image in a format"):
        load_image(path)


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png(100_000, 100_000))
    start = time.perf_counter()
    with pytest.raises(ImageError, match="megapixels"):
        load_image(path)
    assert time.perf_counter() - start < 2


def test_a_damaged_image_is_an_image_error(tmp_path: Path) -> None:
    path = tmp_path / "short.png"
    path.write_bytes(_png(64, 64, b"\x00" * 10))  # far fewer rows than declared
    with pytest.raises(ImageError, match=r"short\.png: damaged or unreadable image"):
        load_image(path)


def test_special_files_empty_files_and_folders(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "folder.png").mkdir()
    for name, message in [
        ("pipe.png", "not a regular file"),
        ("empty.png", "empty"),
        ("folder.png", "folder"),
        ("missing.png", "no such file"),
        ("n" * 300 + ".png", "cannot be read"),
    ]:
        with pytest.raises(ImageError, match=message):
            load_image(tmp_path / name)


def _asymmetric() -> np.ndarray:
    image = np.full((40, 30), 255, np.uint8)
    image[5:15, 3:10] = 0  # a block near the top left
    return image


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    """A phone stores a photo as the sensor saw it and says how to turn it: a 6 must not read as a 9."""
    image = Image.fromarray(_asymmetric())
    exif = Image.Exif()
    exif[0x0112] = 3  # rotated 180 degrees
    image.rotate(180).save(tmp_path / "turned.png", exif=exif)
    loaded = load_image(tmp_path / "turned.png")
    assert loaded.shape == (40, 30)
    np.testing.assert_allclose(loaded, _asymmetric() / 255.0, atol=1e-6)


def test_sixteen_bit_images_keep_their_range(tmp_path: Path) -> None:
    """Dark ink at 20,000 on paper at 60,000 (of 65,535): an 8-bit conversion clipped both to white."""
    values = np.full((32, 32), 60000, np.uint16)
    values[8:24, 14:18] = 20000
    Image.fromarray(values).save(tmp_path / "deep.png")
    loaded = load_image(tmp_path / "deep.png")
    assert loaded[0, 0] == pytest.approx(60000 / 65535, abs=1e-4)
    assert loaded[16, 15] == pytest.approx(20000 / 65535, abs=1e-4)


def test_floating_point_images_keep_their_range(tmp_path: Path) -> None:
    values = np.full((32, 32), 900.0, np.float32)
    values[8:24, 14:18] = 100.0
    values[0, 0] = np.nan
    Image.fromarray(values, mode="F").save(tmp_path / "float.tif")
    loaded = load_image(tmp_path / "float.tif")
    assert loaded.min() == 0.0 and loaded[1, 1] == pytest.approx(1.0) and 0.05 < loaded[16, 15] < 0.2


def test_a_large_image_is_reduced_with_its_aspect_ratio(tmp_path: Path) -> None:
    image = np.full((300, 9000), 255, np.uint8)
    image[100:200, 4000:4100] = 0
    Image.fromarray(image).save(tmp_path / "wide.png")
    loaded = load_image(tmp_path / "wide.png")
    assert max(loaded.shape) <= MAX_SIDE and loaded.shape[1] / loaded.shape[0] == pytest.approx(30, rel=0.02)
    assert loaded.min() < 0.1


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"])
def test_every_allowed_format_reads(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"digit.{fmt.lower()}"
    Image.fromarray(_asymmetric()).save(path, format=fmt)
    loaded = load_image(path)
    assert loaded.shape == (40, 30) and loaded[10, 5] < 0.2 and loaded[30, 20] > 0.8
