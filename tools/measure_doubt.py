"""The shape limits behind "unlike any digit" (engine/preprocess.py FLATTEST_DIGIT, MOST_INK).

    python tools/measure_doubt.py [MNIST_DIR]

Prints, over MNIST test digits as the app prepares them, the percentiles of the ink's width/height and
of its bright-pixel count, and how many digits each limit would call unlike a digit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.data import read_idx  # noqa: E402
from engine.preprocess import FLATTEST_DIGIT, MOST_INK, preprocess  # noqa: E402


def main() -> None:
    folder = Path(
        sys.argv[1]
        if len(sys.argv) > 1
        else Path(__file__).resolve().parents[1] / "resources" / "datasets" / "mnist-sample"
    )
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz", 2051)
    aspects, inks, flagged = [], [], 0
    for image in images:
        prepared = preprocess(image)
        if prepared.empty:
            continue
        rows = np.flatnonzero(prepared.pixels.max(1) > 0.2)
        cols = np.flatnonzero(prepared.pixels.max(0) > 0.2)
        aspects.append((cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1))
        inks.append(int((prepared.pixels > 0.5).sum()))
        flagged += prepared.unlike_digit() is not None
    levels = [50, 99, 99.9, 100]
    print(f"{len(aspects)} MNIST test digits; percentiles {levels}")
    print(f"width/height: {np.percentile(aspects, levels).round(2)}  (limit {FLATTEST_DIGIT})")
    print(f"bright pixels: {np.percentile(inks, levels).round(0)}  (limit {MOST_INK})")
    print(f"called unlike any digit: {flagged} ({flagged / len(aspects):.3%})")


if __name__ == "__main__":
    main()
