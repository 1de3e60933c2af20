"""See what the model sees: drawn digits next to their preprocessed 28x28 input, as one PNG.

    python tools/show_preprocessing.py --out preprocessing.png [--checkpoint CKPT] [IMAGE ...]

Without images it uses the hand-written test strokes (tests/drawn_digits.py), one shape per digit.
Each row: the original, what a naive whole-canvas resize gives, and what engine.preprocess gives,
with the model's answer for the last two.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import checkpoint  # noqa: E402
from engine.images import load_image  # noqa: E402
from engine.inference import BUNDLED_MODEL, Predictor  # noqa: E402
from engine.preprocess import naive_resize, preprocess  # noqa: E402

CELL = 140


def _tile(array: np.ndarray, invert: bool) -> Image.Image:
    pixels = np.clip(array, 0, 1)
    pixels = 1 - pixels if invert else pixels
    image = Image.fromarray((pixels * 255).astype(np.uint8))
    return image.resize((CELL, CELL), Image.NEAREST if array.shape[0] == 28 else Image.BILINEAR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*")
    parser.add_argument("--checkpoint", default=str(BUNDLED_MODEL))
    parser.add_argument("--out", default="preprocessing.png")
    args = parser.parse_args()
    predictor = Predictor.from_checkpoint(checkpoint.load(args.checkpoint))
    if args.images:
        samples = [(Path(p).name, load_image(p)) for p in args.images]
    else:
        from tests.drawn_digits import SHAPES, render

        samples = [
            (str(label), render(shapes[0], box=110, left=30, top=120, pen=12).astype(np.float32) / 255)
            for label, shapes in SHAPES.items()
        ]
    sheet = Image.new("L", (3 * CELL + 20, len(samples) * (CELL + 18) + 18), 255)
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 2), "original | naive resize | engine.preprocess", fill=0)
    for row, (name, image) in enumerate(samples):
        gray = image.astype(np.float32) / (255 if image.dtype == np.uint8 else 1)
        naive = naive_resize(gray)
        prepared = preprocess(gray)
        naive_label = int(
            predictor.model(
                ((torch.from_numpy(naive) - predictor.normalization.mean) / predictor.normalization.std).view(
                    1, 1, 28, 28
                )
            ).argmax()
        )
        label = predictor.predict_prepared(prepared).label
        y = 18 + row * (CELL + 18)
        for col, tile in enumerate([_tile(gray, False), _tile(naive, True), _tile(prepared.pixels, True)]):
            sheet.paste(tile, (col * (CELL + 10), y))
        draw.text((2, y + CELL + 2), f"{name}", fill=0)
        draw.text((CELL + 12, y + CELL + 2), f"model: {naive_label}", fill=0)
        draw.text((2 * CELL + 22, y + CELL + 2), f"model: {label}", fill=0)
    sheet.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
