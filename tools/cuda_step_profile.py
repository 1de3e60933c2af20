"""Where a CUDA training step's time goes, for deciding what to optimise on a GPU.

    python tools/cuda_step_profile.py [--data DIR] [--batch-size 128] [--epochs 1]

Times, per optimiser step of LeNet's recipe: the engine's Trainer; the same with cudnn.benchmark; a
bare loop (forward, backward, fused AdamW on fixed tensors, no indexing or logging); and that bare
step captured once as a CUDA graph and replayed. The gaps say whether the engine's own work, kernel
launches or the GPU itself is the limit. A run pays once for three eager warm-up steps and the capture,
and each epoch for an eager short last batch: ``--epochs`` spreads those over more steps, towards the
steady state. Ends with a profiler table of one epoch of the Trainer's steps.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import TrainConfig  # noqa: E402
from engine.cuda_graphs import on_side_stream  # noqa: E402
from engine.data import load_folder  # noqa: E402
from engine.models import build_model  # noqa: E402
from engine.training import Trainer  # noqa: E402


def trainer_ms(config: TrainConfig, dataset) -> float:
    Trainer(config, dataset).run()  # warm-up
    result = Trainer(config, dataset).run()
    return 1e3 * config.batch_size / result.samples_per_second


def bare_step(batch: int):
    torch.manual_seed(0)
    model = build_model("lenet").cuda()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True, capturable=True)
    x = torch.randn(batch, 1, 28, 28, device="cuda")
    y = torch.randint(0, 10, (batch,), device="cuda")

    def step():
        optimizer.zero_grad(set_to_none=False)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step


def time_ms(fn, steps: int = 300) -> float:
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    torch.cuda.synchronize()
    return 1e3 * (time.perf_counter() - start) / steps


def graphed(step):
    on_side_stream(lambda: [step() for _ in range(3)])
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/mnist"))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per Trainer run")
    args = parser.parse_args()
    dataset = load_folder(args.data)
    config = TrainConfig.for_model("lenet", epochs=args.epochs, device="cuda", batch_size=args.batch_size)
    rows = {"engine Trainer": trainer_ms(config, dataset)}
    torch.backends.cudnn.benchmark = True
    rows["engine Trainer, cudnn.benchmark"] = trainer_ms(config, dataset)
    torch.backends.cudnn.benchmark = False
    every_core = torch.get_num_threads()
    for threads in (1, 4):
        torch.set_num_threads(threads)
        rows[f"engine Trainer, {threads} CPU thread(s)"] = trainer_ms(config, dataset)
    torch.set_num_threads(every_core)
    rows["bare step (eager)"] = time_ms(bare_step(args.batch_size))
    try:
        rows["bare step (CUDA graph replay)"] = time_ms(graphed(bare_step(args.batch_size)))
    except Exception as exc:  # a diagnostic: report and go on
        print(f"CUDA graph capture failed: {exc!r}")
    digitnet = TrainConfig(epochs=args.epochs, device="cuda")
    rows["digitnet default (augmented), engine Trainer"] = trainer_ms(digitnet, dataset)
    rows["digitnet default, no augmentation"] = trainer_ms(replace(digitnet, augment=False), dataset)
    print(
        f"\nms per optimiser step, batch {args.batch_size}, {args.epochs} epoch(s) a run ({torch.cuda.get_device_name()})"
    )
    for name, ms in rows.items():
        print(f"{name:48s} {ms:7.3f} ms  ({args.batch_size / ms * 1e3:>10,.0f} samples/s)")

    from torch.profiler import ProfilerActivity, profile

    trainer = Trainer(replace(config, epochs=1), dataset)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        trainer.run()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=45))
    print(prof.key_averages().table(sort_by="self_device_time_total", row_limit=12, max_name_column_width=45))


if __name__ == "__main__":
    main()
