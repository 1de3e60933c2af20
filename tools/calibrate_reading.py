"""Calibrate the reading policy (engine.reading.ReadingPolicy): how often one digit is read as several
(the false-split rate) against how often touching digits are counted right, for a range of split margins
, of the confidence under which a whole mark is also read cut, and of the weight of the line reader.

    python tools/calibrate_reading.py [--margins 0 1 2 3 4 6] [--sure 0.9 0.99 1.01] [--weights 0.5 1]
        [--singles 1000] [--numbers 200] [--seed 0]

Singles: MNIST test digits (--mnist) and drawings of pendigits digits of the training share (the
held-out share is for measuring only, benchmarks/bench_people.py). Numbers: 2-6 digits written tight
(columns overlapping, many touching), from MNIST test digits and from the same pendigits share. The
policy's ``split_margin`` is the smallest margin whose false-split rate is at most 0.5 % on both; its
``sure_whole`` trades touching digits counted right against the share of single digits also read cut
(which costs time), and its ``reader_weight`` touching digits counted right against digits apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.data import read_idx  # noqa: E402
from engine.inference import load_bundled  # noqa: E402
from engine.pendigits import PENDIGITS, number_drawing, random_drawing, read_pendigits, split  # noqa: E402
from engine.reading import POLICY, read_number  # noqa: E402
from tests.numbers import compose  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=str(SHARED / "mnist"))
    parser.add_argument("--pendigits", default=str(PENDIGITS))
    parser.add_argument("--margins", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0, 4.0, 6.0])
    parser.add_argument("--sure", type=float, nargs="+", default=[POLICY.sure_whole])
    parser.add_argument("--weights", type=float, nargs="+", default=[POLICY.reader_weight])
    parser.add_argument("--singles", type=int, default=1000)
    parser.add_argument("--numbers", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    predictor = load_bundled()
    rng = np.random.default_rng(args.seed)
    images = read_idx(Path(args.mnist) / "t10k-images-idx3-ubyte.gz", 2051)
    train, _ = split(read_pendigits(args.pendigits))
    mnist_singles = [np.pad(images[i], 4) for i in rng.choice(len(images), args.singles, replace=False)]
    pen_singles = [random_drawing(train.trajectories[i], rng) for i in rng.choice(len(train), args.singles)]
    mnist_numbers, pen_numbers, pen_apart = [], [], []
    for _ in range(args.numbers):
        chosen = rng.integers(0, len(images), int(rng.integers(2, 7)))
        mnist_numbers.append(
            (compose([images[i] for i in chosen], [int(rng.integers(-4, 1)) for _ in chosen[1:]], rng), len(chosen))
        )
        chosen = rng.integers(0, len(train), int(rng.integers(2, 7)))
        pen_numbers.append(
            (number_drawing([train.trajectories[i] for i in chosen], rng, (-0.25, 0.05))[0], len(chosen))
        )
        pen_apart.append((number_drawing([train.trajectories[i] for i in chosen], rng, (0.15, 0.6))[0], len(chosen)))
    print("margin  sure   weight  split MNIST  split pen  tight count MNIST  tight count pen  apart count pen")
    for sure, weight, margin in itertools.product(args.sure, args.weights, args.margins):
        policy = dataclasses.replace(POLICY, split_margin=margin, sure_whole=sure, reader_weight=weight)

        def split_rate(drawings: list[np.ndarray], policy=policy) -> float:
            return float(np.mean([len(read_number(predictor, x, policy=policy).digits) > 1 for x in drawings]))

        def counted(numbers: list[tuple[np.ndarray, int]], policy=policy) -> float:
            return float(np.mean([len(read_number(predictor, x, policy=policy).digits) == n for x, n in numbers]))

        print(
            f"{margin:6.2f}  {sure:5.3f}  {weight:6.2f}  {split_rate(mnist_singles):11.4f}  "
            f"{split_rate(pen_singles):9.4f}  {counted(mnist_numbers):17.3f}  {counted(pen_numbers):15.3f}  "
            f"{counted(pen_apart):15.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
