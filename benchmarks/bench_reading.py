"""Reading written numbers (engine/reading.py) against splitting at empty columns, on numbers composed in
this run from MNIST test digits (--data) and from the project's drawn digits (tests/numbers.py).

    python benchmarks/bench_reading.py [--data DIR] [--numbers 200] [--seed 0]

Numbers have 2-6 digits. "spaced": gaps between the digits' ink of 2-8 px at MNIST's scale (a tenth to
a third of a digit's width), 8-30 px for drawn digits 120 px tall; "quick": -4 to 2 px (MNIST) and -12 to
6 px (drawn), so neighbours' columns overlap and many touch. Printed: whole numbers read right, the count
of digits right, for drawn numbers each digit read right in a number against the same drawing alone, and
the time to read one 6-digit drawing (segmentation and classification) against predicting one digit.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import DEFAULT_DATA, percentile, print_json, print_table

SETS = {
    "mnist spaced": ("mnist", 2, 8),
    "mnist quick": ("mnist", -4, 2),
    "drawn spaced": ("drawn", 8, 30),
    "drawn quick": ("drawn", -12, 6),
}


def split_at_empty_columns(predictor, image: np.ndarray) -> str:
    """The baseline: every run of columns holding ink is one digit."""
    from engine.preprocess import ink_map, prepare_ink, to_grayscale

    ink = ink_map(to_grayscale(image))
    filled = ink.max(0) > 0
    edges = np.flatnonzero(np.diff(np.r_[0, filled.astype(np.int8), 0]))
    parts = [ink[:, a:b] for a, b in zip(edges[::2], edges[1::2], strict=True)]
    predictions = predictor.predict_batch([prepare_ink(part) for part in parts])
    return "".join(str(p.label) for p in predictions if p.label is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--numbers", type=int, default=200, help="numbers per set")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from engine.data import read_idx
    from engine.inference import load_bundled
    from engine.reading import read_number
    from tests.numbers import compose, pen_digit, random_number

    torch.set_num_threads(1)  # the app reads on the GUI thread with the default threads; one is the worst case
    predictor = load_bundled()
    folder = Path(args.data)
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz", 2051)
    labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz", 2049)
    by_digit = {d: np.flatnonzero(labels == d) for d in range(10)}
    rng = np.random.default_rng(args.seed)
    rows, figures = [], {}
    for name, (kind, low, high) in SETS.items():
        whole = counted = baseline_whole = baseline_counted = 0
        in_number = alone = digits_total = 0
        for _ in range(args.numbers):
            number = random_number(rng, int(rng.integers(2, 7)))
            if kind == "mnist":
                digits = [images[rng.choice(by_digit[d])] for d in number]
            else:
                digits = [pen_digit(d, rng) for d in number]
            image = compose(digits, [int(rng.integers(low, high + 1)) for _ in number[1:]], rng)
            truth = "".join(map(str, number))
            reading = read_number(predictor, image)
            baseline = split_at_empty_columns(predictor, image)
            whole += reading.text == truth
            counted += len(reading.digits) == len(number)
            baseline_whole += baseline == truth
            baseline_counted += len(baseline) == len(number)
            if kind == "drawn":
                alone += sum(predictor.predict(d).label == n for d, n in zip(digits, number, strict=True))
                if len(reading.text) == len(truth):
                    in_number += sum(a == b for a, b in zip(reading.text, truth, strict=True))
                digits_total += len(number)
        n = args.numbers
        rows.append((f"{name}: whole numbers right", f"{baseline_whole / n:.3f}", f"{whole / n:.3f}", ""))
        rows.append((f"{name}: count of digits right", f"{baseline_counted / n:.3f}", f"{counted / n:.3f}", ""))
        figures[name.replace(" ", "_")] = {
            "whole": round(whole / n, 3),
            "count": round(counted / n, 3),
            "baseline_whole": round(baseline_whole / n, 3),
        }
        if kind == "drawn":
            rows.append(
                (
                    f"{name}: digits right, alone vs in the number",
                    f"{alone / digits_total:.3f}",
                    f"{in_number / digits_total:.3f}",
                    "",
                )
            )
            figures[name.replace(" ", "_")].update(
                alone=round(alone / digits_total, 3), in_number=round(in_number / digits_total, 3)
            )

    times, single, single_read = [], [], []
    for _ in range(100):  # a six-digit drawing as the wide canvas holds it (280 px tall), and one digit alone
        drawn = [pen_digit(d, rng, size=220) for d in random_number(rng, 6)]
        image = 255 - compose(drawn, [int(rng.integers(10, 40)) for _ in range(5)], rng, margin=30)
        start = time.perf_counter()
        read_number(predictor, image)
        times.append(1000 * (time.perf_counter() - start))
        alone = np.pad(255 - drawn[0], 30, constant_values=255)
        start = time.perf_counter()
        predictor.predict(alone)
        single.append(1000 * (time.perf_counter() - start))
        start = time.perf_counter()
        read_number(predictor, alone)
        single_read.append(1000 * (time.perf_counter() - start))
    for q in (50, 95):
        rows.append(
            (
                f"one digit: classifier alone vs the number reader, p{q} ms",
                f"{percentile(single, q):.1f}",
                f"{percentile(single_read, q):.1f}",
                f"{percentile(single_read, q) / percentile(single, q):.2f}x",
            )
        )
    for q in (50, 95):
        rows.append(
            (
                f"6-digit drawing read vs one digit predicted, p{q} ms",
                f"{percentile(single, q):.1f}",
                f"{percentile(times, q):.1f}",
                f"{percentile(times, q) / percentile(single, q):.1f}x",
            )
        )
    figures.update(
        read_p50_ms=round(percentile(times, 50), 2),
        read_p95_ms=round(percentile(times, 95), 2),
        single_p50_ms=round(percentile(single, 50), 2),
        single_p95_ms=round(percentile(single, 95), 2),
        single_read_p95_ms=round(percentile(single_read, 95), 2),
    )
    print_table(f"Reading numbers ({args.numbers} per set; baseline: split at empty columns)", rows)
    print_json("reading", figures)


if __name__ == "__main__":
    main()
