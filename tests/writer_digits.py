"""A writer whose digits are not MNIST's: a 1 with a long flag (which the bundled model reads as a 7), a 7
with a crossbar, a 4 drawn open, the rest as in tests/drawn_digits.py; each drawing jittered (place, size, pen, slant, wobble), as
one person's hand varies. Used to test and measure teaching (engine/teaching.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.drawn_digits import SHAPES, Stroke, render

STYLES: dict[int, list[Stroke]] = {
    1: [[(0.05, 0.4), (0.55, 0.05), (0.55, 0.95)]],  # a long flag, no base: the bundled model reads a 7
    7: [[(0.1, 0.1), (0.9, 0.1), (0.45, 0.95)], [(0.35, 0.55), (0.8, 0.55)]],  # crossbar
    4: [[(0.55, 0.05), (0.1, 0.65), (0.95, 0.65)], [(0.7, 0.35), (0.7, 0.95)]],  # open top
}


def writer_digit(label: int, rng: np.random.Generator) -> np.ndarray:
    """One drawing of ``label`` by the writer: a 280x280 canvas, dark ink on white."""
    strokes = STYLES.get(label) or SHAPES[label][int(rng.integers(len(SHAPES[label])))]
    slant = rng.uniform(-0.12, 0.12)
    wobbled = [
        [(x + slant * (0.5 - y) + rng.normal(0, 0.012), y + rng.normal(0, 0.012)) for x, y in stroke]
        for stroke in strokes
    ]
    box = int(rng.integers(110, 210))
    left = int(rng.integers(10, 280 - box - 10))
    top = int(rng.integers(10, 280 - box - 10))
    return render(wobbled, box=box, left=left, top=top, pen=int(rng.integers(10, 22)))


def write_samples(folder: Path, per_digit: int, seed: int = 0) -> Path:
    """``folder/<digit>/<n>.png``: ``per_digit`` drawings of each digit, in the teaching layout."""
    rng = np.random.default_rng(seed)
    for label in range(10):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        for n in range(per_digit):
            Image.fromarray(writer_digit(label, rng)).save(folder / str(label) / f"{n:03d}.png")
    return folder
