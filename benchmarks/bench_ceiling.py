"""How far LeNet's CPU training is from what this processor can compute, and what 20x the tutorial needs.

    python benchmarks/bench_ceiling.py [--data DIR] [--repeats 3]

Counts the floating-point work of one LeNet training sample (forward, backward; PyTorch's FlopCounterMode),
measures in rounds, side by side: the tutorial loop's samples/s, the engine's LeNet recipe, and this
processor's float32 matrix-product rate at the same thread count (a 1024 x 1024 product, where oneDNN and
the BLAS run near their best). Prints the engine's achieved GFLOP/s as a share of that matrix-product rate,
and the rate that 20x the tutorial's would need. Why: a convolution with 6 or 16
channels does too little work per byte to run at matrix-product speed, so this share says how much of
the gap to 20x any kernel could still close.
"""

from __future__ import annotations

import argparse
import time

import torch
from bench_training import engine_throughput, tutorial_train
from common import DEFAULT_DATA, median, print_json, print_table
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from engine.config import TrainConfig
from engine.data import load_folder
from engine.models import build_model

TARGET_RATIO = 20.0


def training_flops_per_sample(architecture: str, batch_size: int) -> float:
    """Floating-point operations of one sample's forward and backward pass (the optimiser step is not counted)."""
    model = build_model(architecture)
    images = torch.randn(batch_size, 1, 28, 28)
    labels = torch.randint(0, 10, (batch_size,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(images), labels).backward()
    return counter.get_total_flops() / batch_size


def matmul_gflops(size: int = 1024, seconds: float = 1.0) -> float:
    """float32 matrix-product rate at the current thread count."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * size**3 * count / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--samples", type=int, default=10_000, help="samples per throughput measurement")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the table shows medians")
    args = parser.parse_args()
    dataset = load_folder(args.data)
    recipe = TrainConfig.for_model("lenet", epochs=1, device="cpu")
    flops = training_flops_per_sample("lenet", recipe.batch_size)
    device = torch.device("cpu")
    rounds = []
    for _ in range(args.repeats):
        _, n, seconds = tutorial_train(dataset, device, samples=args.samples)
        rounds.append(
            {"tutorial": n / seconds, "engine": engine_throughput(recipe, dataset), "matmul": matmul_gflops()}
        )
    tutorial, engine, matmul = (median([r[k] for r in rounds]) for k in ("tutorial", "engine", "matmul"))
    achieved = engine * flops / 1e9
    needed = TARGET_RATIO * tutorial * flops / 1e9
    rows = [
        ("LeNet training work per sample (forward + backward)", "", f"{flops / 1e6:.2f} MFLOP", ""),
        ("float32 matrix product, 1024 x 1024 (this CPU's practical peak)", "", f"{matmul:,.0f} GFLOP/s", ""),
        (
            f"LeNet recipe (batch {recipe.batch_size}): samples/s, and GFLOP/s as a share of the peak",
            f"{tutorial:,.0f}",
            f"{engine:,.0f} = {achieved:,.0f} GFLOP/s",
            f"{achieved / matmul:.0%} of peak",
        ),
        (
            f"{TARGET_RATIO:.0f}x the tutorial would need",
            "",
            f"{needed / flops * 1e9:,.0f} = {needed:,.0f} GFLOP/s",
            f"{needed / matmul:.0%} of peak",
        ),
    ]
    print_table(f"LeNet on this CPU ({torch.get_num_threads()} threads) against its arithmetic ceiling", rows)
    print_json(
        "ceiling",
        {
            "threads": torch.get_num_threads(),
            "rounds": args.repeats,
            "flops_per_sample": flops,
            "matmul_gflops": round(matmul, 1),
            "tutorial_sps": round(tutorial),
            "engine_sps": round(engine),
            "engine_gflops": round(achieved, 1),
            "engine_share_of_peak": round(achieved / matmul, 3),
            "ratio": round(engine / tutorial, 2),
            "target_gflops": round(needed, 1),
            "target_share_of_peak": round(needed / matmul, 3),
        },
    )


if __name__ == "__main__":
    main()
