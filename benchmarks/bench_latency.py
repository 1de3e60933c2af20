"""Prediction latency for one drawn digit (preprocessing + forward pass), median and p95.

    python benchmarks/bench_latency.py [--checkpoint CKPT] [--runs 300]

Side by side: the obvious tutorial-style path (squeeze the canvas to 28x28 with PIL, ToTensor,
Normalize, forward) and Digit Studio's (MNIST-style preprocessing, forward), on the same 280x280
drawings, in one process. Accuracy on those drawings is printed too, since speed alone means little.
Then what the canvas calls, engine.reading.read_number (which looks for several digits first), against
predict alone on the same drawings.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import median, percentile, print_json, print_table
from PIL import Image

from engine import checkpoint
from engine.inference import BUNDLED_MODEL, Predictor
from engine.reading import read_number
from tests.drawn_digits import drawn_digits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(BUNDLED_MODEL))
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    from torchvision import transforms

    predictor = Predictor.from_checkpoint(checkpoint.load(args.checkpoint))
    norm = predictor.normalization
    tutorial = transforms.Compose(
        [transforms.Resize((28, 28)), transforms.ToTensor(), transforms.Normalize((norm.mean,), (norm.std,))]
    )
    samples = drawn_digits()

    @torch.inference_mode()
    def naive(canvas: np.ndarray) -> int:
        x = tutorial(Image.fromarray(255 - canvas))  # inverted so ink is bright, as MNIST
        return int(predictor.model(x.unsqueeze(0)).argmax())

    def ours(canvas: np.ndarray) -> int:
        return predictor.predict(canvas).label

    def canvas_reading(canvas: np.ndarray) -> int:
        reading = read_number(predictor, canvas)
        return reading.digits[0].prediction.label if len(reading.digits) == 1 else -1

    timings: dict[str, list[float]] = {"naive": [], "ours": [], "reading": []}
    correct = {"naive": 0, "ours": 0, "reading": 0}
    for name, fn in (("naive", naive), ("ours", ours), ("reading", canvas_reading)):
        for label, canvas in samples:  # warm-up and accuracy
            correct[name] += fn(canvas) == label
        for i in range(args.runs):
            canvas = samples[i % len(samples)][1]
            start = time.perf_counter()
            fn(canvas)
            timings[name].append(1000 * (time.perf_counter() - start))
    rows = [
        (
            "median ms per drawing",
            f"{median(timings['naive']):.2f}",
            f"{median(timings['ours']):.2f}",
            f"{median(timings['ours']) / median(timings['naive']):.1f}x",
        ),
        (
            "p95 ms per drawing",
            f"{percentile(timings['naive'], 95):.2f}",
            f"{percentile(timings['ours'], 95):.2f}",
            f"{percentile(timings['ours'], 95) / percentile(timings['naive'], 95):.1f}x",
        ),
        (f"drawn digits recognised (of {len(samples)})", str(correct["naive"]), str(correct["ours"]), ""),
    ]
    print_table("Prediction latency: whole-canvas resize (baseline) vs MNIST-style preprocessing", rows)
    print_table(
        "One digit on the canvas: predict (baseline) vs read_number, which the canvas calls",
        [
            (
                "median ms per drawing",
                f"{median(timings['ours']):.2f}",
                f"{median(timings['reading']):.2f}",
                f"{median(timings['reading']) / median(timings['ours']):.2f}x",
            ),
            (
                "p95 ms per drawing",
                f"{percentile(timings['ours'], 95):.2f}",
                f"{percentile(timings['reading'], 95):.2f}",
                f"{percentile(timings['reading'], 95) / percentile(timings['ours'], 95):.2f}x",
            ),
            (
                f"drawn digits read as that one digit (of {len(samples)})",
                str(correct["ours"]),
                str(correct["reading"]),
                "",
            ),
        ],
    )
    print_json(
        "latency",
        {
            "torch_threads": torch.get_num_threads(),
            "naive_median_ms": round(median(timings["naive"]), 3),
            "naive_p95_ms": round(percentile(timings["naive"], 95), 3),
            "median_ms": round(median(timings["ours"]), 3),
            "p95_ms": round(percentile(timings["ours"], 95), 3),
            "naive_correct": correct["naive"],
            "correct": correct["ours"],
            "samples": len(samples),
            "reading_median_ms": round(median(timings["reading"]), 3),
            "reading_p95_ms": round(percentile(timings["reading"], 95), 3),
            "reading_correct": correct["reading"],
        },
    )


if __name__ == "__main__":
    main()
