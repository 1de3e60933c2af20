"""Measure MNIST's typical stroke width the way engine.preprocess measures a drawing.

Prints the median of ``stroke_width`` over training digits, each cropped to its ink and scaled so its
longer side is ``WORK`` pixels; that median is ``engine.preprocess.MNIST_STROKE_WIDTH``.

    python tools/measure_stroke_width.py --data ../shared/datasets/mnist
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.data import load_folder  # noqa: E402
from engine.preprocess import WORK, _resize, stroke_width  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/mnist"))
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    images = load_folder(args.data).train.images[: args.samples].numpy().astype(np.float32) / 255.0
    widths = []
    for image in images:
        rows = np.flatnonzero(image.max(1) > 0)
        cols = np.flatnonzero(image.max(0) > 0)
        crop = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        scale = WORK / max(crop.shape)
        work = _resize(crop, max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale)))
        widths.append(stroke_width(work / work.max()))
    widths = np.array(widths)
    print(
        json.dumps(
            {
                "median": round(float(np.median(widths)), 2),
                "p10": round(float(np.percentile(widths, 10)), 2),
                "p90": round(float(np.percentile(widths, 90)), 2),
                "samples": len(widths),
            }
        )
    )


if __name__ == "__main__":
    main()
