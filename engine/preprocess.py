"""Turning a drawing or a photo into the 28x28 input a model trained on MNIST expects.

MNIST digits were made by fitting each digit into a 20x20 box (aspect ratio kept, anti-aliased) and
placing that box in a 28x28 field so that the centre of mass sits in the middle. Squeezing a whole canvas
to 28x28 instead gives tiny, thin, off-centre digits that a model reads as 1s and 7s, which is why hobby
apps disappoint. This module reproduces MNIST's recipe for any image:

1. grayscale, then ink polarity: dark ink on light paper is inverted so ink is bright on black;
2. background removal and contrast stretch, with a noise floor;
3. crop to the ink, ignoring a tiny fraction of stray ink mass (noise specks);
4. rescale to a working size and bring the stroke width to MNIST's (thicken a pen-thin line, thin a
   marker-thick one), measured as 2 * area / perimeter of the ink;
5. anti-aliased resize so the longer side is 20 px, placed in 28x28 by centre of mass;
6. the checkpoint's normalisation, when one is given.

The canvas, image files (read by :mod:`engine.images`), the CLI's ``predict`` and the tests all use
:func:`preprocess`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch.nn import functional as F

from engine.data import Normalization
from engine.errors import ImageError

FIELD = 28
BOX = 20
WORK = 80  # working resolution of the longer side (4x the 20 px box) for stroke measurements
# Median stroke width of MNIST training digits measured by stroke_width() at the working resolution
# (see tools/measure_stroke_width.py): about 2.7 px of the 20 px box.
MNIST_STROKE_WIDTH = 10.8
EMPTY_INK_FRACTION = 0.0005  # less bright ink area than this (of the image) counts as empty
NOISE_MASS = 0.002  # ink mass ignored on each side when cropping
# Shapes beyond 99.84 % of MNIST's test digits as prepared here (tools/measure_doubt.py): flatter than
# 1.8 wide per high, or more bright pixels than 215 of 784. A dash, a wave or a filled blob lies beyond.
FLATTEST_DIGIT = 1.8
MOST_INK = 215


@dataclass(frozen=True)
class PreparedInput:
    """What the model sees. ``pixels`` is 28x28 float32 in [0, 1], ink bright; ``empty`` means no digit."""

    pixels: np.ndarray
    empty: bool
    stroke_width: float = 0.0

    def tensor(self, normalization: Normalization) -> torch.Tensor:
        x = torch.from_numpy(self.pixels).view(1, 1, FIELD, FIELD)
        return (x - normalization.mean) / normalization.std

    def unlike_digit(self) -> str | None:
        """Why the ink cannot be a digit (flatter, or more ink, than any MNIST digit), or None."""
        if self.empty:
            return None
        rows = np.flatnonzero(self.pixels.max(1) > 0.2)
        cols = np.flatnonzero(self.pixels.max(0) > 0.2)
        if len(rows) and (cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1) > FLATTEST_DIGIT:
            return "wider than any digit"
        if int((self.pixels > 0.5).sum()) > MOST_INK:
            return "more ink than any digit"
        return None


def to_grayscale(image: Any) -> np.ndarray:
    """A float32 array in [0, 1] from a PIL image or a numpy array (2-D, or HxWx3 / HxWx4)."""
    if hasattr(image, "convert") and hasattr(image, "mode"):
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
            return _composite(rgba)
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    array = np.asarray(image)
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        array = array.astype(np.float32) / 65535.0
    else:
        array = array.astype(np.float32)
        if array.size and array.max() > 1.0:
            array = array / 255.0
    if array.ndim == 3 and array.shape[2] == 4:
        return _composite(array)
    if array.ndim == 3 and array.shape[2] == 3:
        return array @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if array.ndim == 3 and array.shape[2] == 1:
        return array[:, :, 0]
    if array.ndim != 2:
        raise ImageError(f"expected a 2-D grayscale or RGB(A) image, got shape {array.shape}")
    return np.clip(array, 0.0, 1.0)


def _composite(rgba: np.ndarray) -> np.ndarray:
    """Transparent pixels are paper: composite over white."""
    gray = rgba[:, :, :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    alpha = rgba[:, :, 3]
    return gray * alpha + (1.0 - alpha)


def ink_map(gray: np.ndarray) -> np.ndarray:
    """Ink intensity in [0, 1] (bright = ink) with the background removed, whatever the polarity."""
    h, w = gray.shape
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]) if h > 1 and w > 1 else gray.ravel()
    background = float(np.median(border))
    ink = 1.0 - gray if background > 0.5 else gray.copy()
    floor = float(np.median(ink))  # the paper's own level (most of the image is paper)
    ink = np.clip(ink - floor, 0.0, None)
    peak = float(np.percentile(ink, 99.9)) if ink.size > 1000 else float(ink.max())
    peak = max(peak, float(ink.max()) * 0.5)
    if peak < 0.12:  # no contrast at all: nothing drawn
        return np.zeros_like(ink)
    ink = np.clip(ink / peak, 0.0, 1.0)
    ink[ink < 0.15] = 0.0  # paper texture, JPEG noise
    return ink


def _bounds(profile: np.ndarray) -> tuple[int, int]:
    """Index range holding all but NOISE_MASS of the ink on each side."""
    cumulative = np.cumsum(profile)
    total = cumulative[-1]
    low = int(np.searchsorted(cumulative, total * NOISE_MASS, side="right"))
    high = int(np.searchsorted(cumulative, total * (1 - NOISE_MASS), side="left"))
    return low, max(high, low) + 1


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: 2 * area / perimeter of the ink (binarised at half intensity)."""
    mask = ink >= 0.5
    area = int(mask.sum())
    if area == 0:
        return 0.0
    padded = np.pad(mask, 1)
    interior = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    perimeter = area - int(interior.sum())
    return 2.0 * area / max(perimeter, 1)


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).view(1, 1, *image.shape)
    shrinking = height < image.shape[0] or width < image.shape[1]
    y = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking)
    return y.view(height, width).numpy()


def _morph(ink: np.ndarray, radius: int, dilate: bool) -> np.ndarray:
    """Grey dilation (or erosion) by a square of side 2 * radius + 1, the edges never widening the ink."""
    size = 2 * radius + 1
    if dilate:
        return ndimage.maximum_filter(ink, size=size, mode="nearest")
    return ndimage.minimum_filter(ink, size=size, mode="nearest")


def _adjust_stroke(work: np.ndarray) -> tuple[np.ndarray, float]:
    """Bring the stroke width to MNIST's: dilate or erode by a fractional radius (a blend of the two
    whole radii around it).

    The change is continuous in the measured width, so drawings whose widths differ by a pixel (the
    same strokes with and without anti-aliasing, say) are prepared alike. A cut-off ("thicken below
    70 %"), which sat right where the canvas's default pen lands, once sent such a pair to different digits.
    """
    width = stroke_width(work)
    if width <= 0:
        return work, width
    change = MNIST_STROKE_WIDTH - width  # > 0: thicken
    radius = abs(change) / 2  # a dilation by r adds about 2r to the width
    whole, fraction = int(radius), radius - int(radius)
    grow = change > 0
    inner = _morph(work, whole, dilate=grow) if whole > 0 else work
    adjusted = (1 - fraction) * inner + fraction * _morph(work, whole + 1, dilate=grow)
    if not grow and (adjusted >= 0.5).sum() < 0.25 * (work >= 0.5).sum():  # never erase the digit
        return work, width
    return adjusted, width


def _place_by_centre_of_mass(box: np.ndarray) -> np.ndarray:
    h, w = box.shape
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    total = float(box.sum())
    ys, xs = np.mgrid[0:h, 0:w]
    cy = float((ys * box).sum() / total) if total > 0 else (h - 1) / 2
    cx = float((xs * box).sum() / total) if total > 0 else (w - 1) / 2
    top = int(round((FIELD - 1) / 2 - cy))
    left = int(round((FIELD - 1) / 2 - cx))
    top = min(max(top, 0), FIELD - h)
    left = min(max(left, 0), FIELD - w)
    field[top : top + h, left : left + w] = box
    return field


def ink_of(image: Any) -> np.ndarray | None:
    """Steps 1-2: the ink map of a drawing or photo, or None when nothing is drawn on it."""
    gray = to_grayscale(image)
    if gray.size == 0:
        return None
    ink = ink_map(gray)
    if float((ink >= 0.5).mean()) < EMPTY_INK_FRACTION or float(ink.max()) == 0.0:
        return None
    return ink


def preprocess(image: Any) -> PreparedInput:
    """Any grayscale or colour drawing or photo -> MNIST-style 28x28 ink in [0, 1] (or ``empty``)."""
    ink = ink_of(image)
    if ink is None:
        return PreparedInput(np.zeros((FIELD, FIELD), np.float32), True)
    return prepare_ink(ink)


STROKE_PAD = 8  # paper around the working image, so that thickening a stroke never runs off its edge


def crop_to_ink(ink: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Step 3: the ink cropped to all but a tiny fraction of its mass on each side; and the crop's top
    and left in ``ink``."""
    top, bottom = _bounds(ink.sum(1))
    left, right = _bounds(ink.sum(0))
    return ink[top:bottom, left:right], top, left


def at_mnist_stroke(crop: np.ndarray, height: int, width: int) -> tuple[np.ndarray, float] | None:
    """Step 4: ``crop`` resized to ``height`` x ``width`` (the working resolution), scaled to its peak, and
    its stroke brought to MNIST's width, with ``STROKE_PAD`` pixels of paper around it; and the stroke
    width measured before. None when the resize leaves no ink."""
    work = _resize(crop, height, width)
    peak = float(work.max())
    if peak <= 0:
        return None
    return _adjust_stroke(np.pad(np.clip(work / peak, 0.0, 1.0), STROKE_PAD))


def prepare_ink(ink: np.ndarray) -> PreparedInput:
    """Steps 3-5 on an ink map (from :func:`ink_map`, or one digit cut out of it by engine.reading)."""
    if float(ink.max()) <= 0.0:
        return PreparedInput(np.zeros((FIELD, FIELD), np.float32), True)
    crop, _, _ = crop_to_ink(ink)
    h, w = crop.shape
    scale = WORK / max(h, w)
    adjusted = at_mnist_stroke(crop, max(1, round(h * scale)), max(1, round(w * scale)))
    if adjusted is None:
        return PreparedInput(np.zeros((FIELD, FIELD), np.float32), True)
    work, measured = adjusted
    # crop the padding back to the (possibly thickened) ink before fitting the 20 px box
    rows = np.flatnonzero(work.max(1) > 0.05)
    cols = np.flatnonzero(work.max(0) > 0.05)
    work = work[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = work.shape
    scale = BOX / max(h, w)
    bh, bw = max(1, round(h * scale)), max(1, round(w * scale))
    box = np.clip(_resize(work, bh, bw), 0.0, 1.0)
    peak = float(box.max())
    if peak > 0:
        box = np.clip(box / peak, 0.0, 1.0)
    return PreparedInput(_place_by_centre_of_mass(box).astype(np.float32), False, measured)


def naive_resize(image: Any) -> np.ndarray:
    """The obvious baseline (whole canvas squeezed to 28x28, inverted if light): for comparisons only."""
    gray = to_grayscale(image)
    ink = 1.0 - gray if float(np.median(gray)) > 0.5 else gray
    return _resize(ink, FIELD, FIELD)
