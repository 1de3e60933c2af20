"""CPU training speed against the number of intra-op threads, per model and batch size.

    python benchmarks/bench_threads.py [--data DIR] [--threads 1,2,4,8] [--samples 4096]
                                       [--batch-sizes 8,16,32] [--repeats 3]

Why: PyTorch uses every core by default, but these models are small, and an OpenMP region across
many threads can cost more than it saves (on a 16-core machine LeNet at batch 8 trained 5x slower with
all cores than a 2-core laptop does with two). Each row is one configuration; each column one thread
count; the last column is the best count and its speed-up over using every core. ``--batch-sizes``
adds a row per model and batch size. Each figure is the median of ``--repeats`` rounds, and a round
measures every row and count once, so that the machine's drift falls on all of them alike.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from dataclasses import replace

import torch
from common import DEFAULT_DATA, median, print_json

import engine.training
from engine.config import TrainConfig
from engine.data import Dataset, Split, load_folder
from engine.training import Trainer

CONFIGS = {
    "lenet batch 8 (tutorial)": TrainConfig(
        model="lenet",
        epochs=1,
        batch_size=8,
        optimizer="sgd",
        lr=0.001,
        momentum=0.9,
        weight_decay=0.0,
        schedule="none",
        augment=False,
    ),
    "lenet recipe": TrainConfig.for_model("lenet", epochs=1),
    "digitnet default": TrainConfig(epochs=1),
}
ROW_PREFIX = {
    "lenet batch 8 (tutorial)": "lenet tutorial settings",
    "lenet recipe": "lenet recipe",
    "digitnet default": "digitnet default",
}  # for the --batch-sizes rows


def subset(dataset: Dataset, samples: int) -> Dataset:
    """The first ``samples`` training images; the test split is cut too (the epoch-end test pass is not timed)."""
    train = Split(dataset.train.images[:samples], dataset.train.labels[:samples])
    test = Split(dataset.test.images[:256], dataset.test.labels[:256])
    return replace(dataset, train=train, test=test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--threads", help="comma-separated counts (default: 1, 2, 4, ... up to every core)")
    parser.add_argument("--samples", type=int, default=4096, help="training images per measurement")
    parser.add_argument("--batch-sizes", help="comma-separated batch sizes: a row for each model at each")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; each figure is their median")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    counts = (
        [int(t) for t in args.threads.split(",")]
        if args.threads
        else sorted({min(2**i, cores) for i in range(cores.bit_length() + 1)})
    )
    configs = dict(CONFIGS)
    for size in (int(b) for b in args.batch_sizes.split(",")) if args.batch_sizes else ():
        for name, config in CONFIGS.items():
            configs[f"{ROW_PREFIX[name]}, batch {size}"] = replace(config, batch_size=size)
    dataset = subset(load_folder(args.data), args.samples)
    engine.training.cpu_threads_for = contextlib.nullcontext  # measure each count as set, not the engine's pick
    rounds: dict[str, dict[int, list[float]]] = {name: {t: [] for t in counts} for name in configs}
    for _ in range(args.repeats):
        for name, config in configs.items():
            for threads in counts:
                torch.set_num_threads(threads)
                Trainer(replace(config, device="cpu"), subset(dataset, 512)).run()  # warm-up: oneDNN primitives
                result = Trainer(replace(config, device="cpu"), dataset).run()
                rounds[name][threads].append(result.samples_per_second)
    figures = {name: {t: median(values) for t, values in row.items()} for name, row in rounds.items()}
    width = max(len(n) for n in configs)
    print(
        f"\nCPU training samples/s by intra-op threads ({cores} cores, {args.samples:,} images, "
        f"median of {args.repeats})"
    )
    print("configuration".ljust(width), *(f"{t:>8}" for t in counts), "  best")
    for name, row in figures.items():
        best = max(row, key=row.get)
        print(
            name.ljust(width),
            *(f"{row[t]:8,.0f}" for t in counts),
            f"  {best} threads, {row[best] / row[counts[-1]]:.2f}x over {counts[-1]}",
        )
    print_json("threads", {"cores": cores, "samples_per_second": figures})


if __name__ == "__main__":
    main()
