"""The one way the app reads an image file: raster formats only, bounded in size, range kept, upright.

Every image the user hands over (``predict``'s paths, the canvas's Open image, a file dropped on it)
comes through :func:`load_image`:

- Pillow may only identify the raster formats in :data:`FORMATS`; with every plugin enabled, a PostScript
  or EPS file named ``.png`` would be rendered by the system's Ghostscript;
- only regular files up to :data:`MAX_FILE_BYTES`, and images up to :data:`MAX_PIXELS`, are decoded
  (a FIFO would block forever, a 100,000 x 100,000 PNG of a few kilobytes would take gigabytes); large
  images are reduced while decoding to at most :data:`MAX_SIDE` pixels a side, plenty for digits;
- EXIF orientation is applied, so a phone photo of a 6 is not read upside down as a 9;
- 16-bit and floating-point images keep their range instead of being clipped to 8 bits.

Any failure is an :class:`engine.errors.ImageError` naming the file; tests/test_images.py holds the cases.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import ImageError

if TYPE_CHECKING:
    from PIL import Image
from engine.files import check_input
from engine.preprocess import to_grayscale

# Pillow warns of odd metadata and of sizes between its own pixel limit and twice it; a readable image is
# read and an unreadable one refused with a message, so its warnings would only add stray lines of output
warnings.filterwarnings("ignore", module=r"PIL\.")

FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MAX_FILE_BYTES = 100 * 2**20
MAX_PIXELS = 50_000_000  # a 50-megapixel photo; its decoded RGB is 150 MB
MAX_SIDE = 4096  # decoded images are reduced to this, which keeps memory and preprocessing time bounded


def load_image(path: Path | str) -> np.ndarray:
    """Read an image file as grayscale float32 in [0, 1]; any problem is an ImageError naming the file."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path, formats=FORMATS) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageError(
                    f"{path}: {width} x {height} pixels is more than the "
                    f"{MAX_PIXELS // 1_000_000} megapixels an image may have"
                )
            if max(width, height) > MAX_SIDE and image.format == "JPEG":
                image.draft(image.mode, (MAX_SIDE, MAX_SIDE))  # JPEG decodes at 1/2, 1/4 or 1/8 scale
            image.load()
            return _gray(_reduced(ImageOps.exif_transpose(image)))
    except ImageError:
        raise
    except Image.DecompressionBombError:  # Pillow's own limit, above MAX_PIXELS
        raise ImageError(f"{path}: more than the {MAX_PIXELS // 1_000_000} megapixels an image may have") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image in a format Digit Studio reads ({', '.join(FORMATS)})") from None
    except MemoryError:
        raise ImageError(f"{path}: too large to read into memory") from None
    except Exception as exc:  # Pillow's decoders raise many types on damaged data; all mean the same
        raise ImageError(f"{path}: damaged or unreadable image ({_reason(exc)})") from None


def _check_file(path: Path) -> None:
    info = check_input(path, "an image", ImageError)
    if info.st_size > MAX_FILE_BYTES:
        raise ImageError(
            f"{path}: {info.st_size / 2**20:,.0f} MB is larger than the "
            f"{MAX_FILE_BYTES // 2**20} MB an image file may have"
        )


def _reason(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0][:100] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _reduced(image: Image.Image) -> Image.Image:
    """The image shrunk by a whole factor so its longer side is at most MAX_SIDE (box filter, any mode)."""
    factor = -(-max(image.size) // MAX_SIDE)
    if factor <= 1:
        return image
    if image.mode.startswith("I;16"):
        image = image.convert("I")  # values kept; reduce() takes 32-bit but not 16-bit integers
    elif image.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    return image.reduce(factor)


def _gray(image: Image.Image) -> np.ndarray:
    """Grayscale float32 in [0, 1], keeping the full range of 16-bit and floating-point pixels."""
    if image.mode.startswith("I;16"):
        return _scaled(np.asarray(image).astype(np.float32), 65535.0)
    if image.mode == "I":  # 16-bit PNGs and 32-bit TIFFs
        values = np.asarray(image).astype(np.float64)
        top = 65535.0 if values.size and values.min() >= 0 and values.max() <= 65535 else None
        return _scaled(values, top)
    if image.mode == "F":
        values = np.nan_to_num(np.asarray(image).astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        top = 1.0 if values.size and values.min() >= 0 and values.max() <= 1 else None
        return _scaled(values, top)
    if image.mode not in ("L", "LA", "RGB", "RGBA", "P", "PA"):
        image = image.convert("RGB")  # CMYK, YCbCr, 1-bit
    return to_grayscale(image)


def _scaled(values: np.ndarray, top: float | None) -> np.ndarray:
    """Values in [0, top], or stretched from their own minimum and maximum when ``top`` is None."""
    if top is None:
        low, high = float(values.min()), float(values.max())
        return ((values - low) / (high - low) if high > low else np.zeros_like(values)).astype(np.float32)
    return (values / top).astype(np.float32)
