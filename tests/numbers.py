"""Written numbers composed from single digits, to test and measure engine/reading.py.

Digits are cut to their ink's columns and set side by side with a gap (negative: the columns overlap, as in
quick handwriting; the ink is combined, so overlapping digits may touch) and a little vertical jitter.
"""

from __future__ import annotations

import numpy as np

from tests.drawn_digits import SHAPES, render


def compose(
    digits: list[np.ndarray], gaps: list[int], rng: np.random.Generator, jitter: int = 2, margin: int = 8
) -> np.ndarray:
    """Bright-ink digit images (HxW, same H) set left to right with ``gaps`` pixels between their inks."""
    cut = []
    for image in digits:
        cols = np.flatnonzero(image.max(0) > 0)
        cut.append(image[:, cols[0] : cols[-1] + 1] if len(cols) else image)
    height = max(image.shape[0] for image in cut) + 2 * jitter + 2 * margin
    width = sum(image.shape[1] for image in cut) + sum(gaps) + 2 * margin
    canvas = np.zeros((height, max(width, 1)), np.uint8)
    x = margin
    for k, image in enumerate(cut):
        y = margin + jitter + int(rng.integers(-jitter, jitter + 1))
        x = max(0, x)
        h, w = image.shape
        w = min(w, canvas.shape[1] - x)
        region = canvas[y : y + h, x : x + w]
        np.maximum(region, image[:, :w], out=region)
        x += image.shape[1] + (gaps[k] if k < len(gaps) else 0)
    return canvas


def pen_digit(label: int, rng: np.random.Generator, size: int = 140) -> np.ndarray:
    """One of tests/drawn_digits.py's shapes of ``label``, jittered (slant, wobble, pen), bright ink."""
    strokes = SHAPES[label][int(rng.integers(len(SHAPES[label])))]
    slant = rng.uniform(-0.1, 0.1)
    wobbled = [
        [(x + slant * (0.5 - y) + rng.normal(0, 0.01), y + rng.normal(0, 0.01)) for x, y in stroke]
        for stroke in strokes
    ]
    box = int(size * rng.uniform(0.8, 0.9))
    return 255 - render(
        wobbled, size=size, box=box, left=(size - box) // 2, top=(size - box) // 2, pen=int(rng.integers(7, 12))
    )


def random_number(rng: np.random.Generator, length: int) -> list[int]:
    return [int(d) for d in rng.integers(0, 10, length)]
