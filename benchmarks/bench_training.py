"""Training throughput and time-to-accuracy: the classic PyTorch tutorial loop vs the engine, side by side.

    python benchmarks/bench_training.py [--data DIR] [--device cpu|cuda] [--budget 30] [--quick]

1. LeNet throughput (training samples/s): the tutorial loop (batch 8, DataLoader with 2 workers applying
   PIL ToTensor + Normalize per sample, SGD lr 0.001 momentum 0.9) against the engine with the same
   hyper-parameters, and against the engine's defaults for LeNet (on a CPU also with LeNet's fused
   kernel switched off, to show what it adds). Measured in ``--repeats`` rounds of
   tutorial-then-engine, because a shared machine's speed can drift by 15-20 % from one minute to the next:
   a ratio is taken within a round, and the table gives the median ratio and its range.
2. Default model: training seconds to reach 98.5 % and 99.0 % test accuracy, and the accuracy after a
   fixed training budget, against the tutorial loop given the same budget.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import replace

import torch
from common import DEFAULT_DATA, median, print_json, print_table
from torch.utils.data import DataLoader
from tutorial_script import Net

from engine import native_library
from engine.config import TrainConfig
from engine.data import load_folder
from engine.devices import resolve_device
from engine.evaluation import evaluate
from engine.events import EpochEvent, FinishedEvent, TrainingControl
from engine.lenet_features import kernel_status
from engine.training import Trainer


def tutorial_dataset(images: torch.Tensor, labels: torch.Tensor):
    """torchvision's own MNIST class over the given tensors, with the tutorial's transform.

    Only the file lookup of ``MNIST.__init__`` is skipped (it wants its own folder layout); every sample
    goes through the class's own ``__getitem__``: a PIL image, ``ToTensor``, ``Normalize``.
    """
    from torchvision import transforms
    from torchvision.datasets import MNIST, VisionDataset

    dataset = MNIST.__new__(MNIST)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    VisionDataset.__init__(dataset, root="", transform=transform)
    dataset.train = True
    dataset.data, dataset.targets = images, labels
    return dataset


def tutorial_train(dataset, device: torch.device, seconds: float | None = None, samples: int | None = None):
    """The tutorial loop; stops after ``samples`` samples or ``seconds`` of training. Returns (model, n, s)."""
    torch.manual_seed(0)
    model = Net().to(device)  # the tutorial's own network, ReLU before pooling
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    criterion = torch.nn.CrossEntropyLoss()
    data = tutorial_dataset(dataset.train.images, dataset.train.labels)
    loader = DataLoader(data, batch_size=8, shuffle=True, num_workers=2)
    done, start = 0, time.perf_counter()
    running_loss = 0.0
    while True:
        for inputs, labels in loader:
            inputs, labels = inputs.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = criterion(model(inputs), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()  # as the tutorial does, for its periodic print
            done += len(labels)
            elapsed = time.perf_counter() - start
            if (samples is not None and done >= samples) or (seconds is not None and elapsed >= seconds):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                return model, done, time.perf_counter() - start


def engine_throughput(config: TrainConfig, dataset, fused_kernel: bool = True) -> float:
    """Samples/s of one engine run; ``fused_kernel=False`` runs LeNet's plain PyTorch operators instead."""
    with contextlib.nullcontext() if fused_kernel else native_library.switched_off():
        result = Trainer(config, dataset).run()
    return result.samples_per_second


def time_to_accuracy(config: TrainConfig, dataset, targets: tuple[float, ...]) -> tuple[dict, FinishedEvent]:
    """Training seconds (test passes excluded) until each target test accuracy, checked at epoch ends."""
    reached: dict[float, float | None] = {t: None for t in targets}

    def on_event(event) -> None:
        if isinstance(event, EpochEvent):
            for target in targets:
                if reached[target] is None and event.test_accuracy >= target:
                    reached[target] = round(event.train_seconds, 2)

    return reached, Trainer(config, dataset).run(on_event)


def budget_accuracy(config: TrainConfig, dataset, budget: float, device: torch.device) -> float:
    control = TrainingControl()
    start = {"t": None}

    def on_event(event) -> None:
        from engine.events import StepEvent

        if isinstance(event, StepEvent):
            if start["t"] is None:
                start["t"] = time.perf_counter()
            if time.perf_counter() - start["t"] >= budget:
                control.stop()

    trainer = Trainer(config, dataset)
    trainer.run(on_event, control)
    return evaluate(trainer.model, dataset.test, trainer.normalization, device).accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--budget", type=float, default=30.0, help="training seconds for the budget comparison")
    parser.add_argument("--samples", type=int, default=10_000, help="samples per throughput measurement")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="throughput rounds; the table shows medians, and each ratio's range over the rounds",
    )
    parser.add_argument("--quick", action="store_true", help="throughput only")
    args = parser.parse_args()
    device = resolve_device(args.device)
    dataset = load_folder(args.data)
    torch.set_num_threads(torch.get_num_threads())

    # 1. throughput: rounds of (tutorial, engine x3), so each ratio compares measurements taken moments apart
    same = TrainConfig(
        model="lenet",
        epochs=1,
        batch_size=8,
        optimizer="sgd",
        lr=0.001,
        momentum=0.9,
        weight_decay=0.0,
        schedule="none",
        augment=False,
        device=str(device),
    )
    defaults = TrainConfig.for_model("lenet", epochs=1, device=str(device))
    engines = {  # name: (config, with LeNet's fused CPU kernel where it applies)
        "batch8": (same, True),
        "default": (defaults, True),
        "augmented": (replace(defaults, augment=True, batch_size=64), True),
    }
    kernel = kernel_status()
    if device.type == "cpu" and kernel.available:  # what the kernel adds, measured in the same rounds
        engines["default_plain"] = (defaults, False)
    rounds: list[dict[str, float]] = []
    for round_number in range(args.repeats):
        _, n, seconds = tutorial_train(dataset, device, samples=args.samples)
        # The plain operators run slower after the kernel's runs in the same process (the C library's heap
        # is left in another state: a bare step 3.5-3.7 ms fresh, up to 4.4 ms after), so every other round
        # measures the kernel-off run first.
        order = list(engines)
        if round_number % 2 == 1 and "default_plain" in engines:
            order.remove("default_plain")
            order.insert(0, "default_plain")
        measured = {k: engine_throughput(engines[k][0], dataset, engines[k][1]) for k in order}
        rounds.append({"tutorial": n / seconds, **{k: measured[k] for k in engines}})
    sps = {key: median([r[key] for r in rounds]) for key in rounds[0]}
    ratios = {key: [r[key] / r["tutorial"] for r in rounds] for key in engines}

    def ratio_cell(key: str) -> str:
        values = ratios[key]
        spread = f" ({min(values):.1f}-{max(values):.1f})" if len(values) > 1 else ""
        return f"{median(values):.1f}x{spread}"

    rows = [
        (
            "LeNet samples/s, batch 8 (tutorial settings)",
            f"{sps['tutorial']:,.0f}",
            f"{sps['batch8']:,.0f}",
            ratio_cell("batch8"),
        ),
        (
            f"LeNet samples/s, engine's LeNet recipe (batch {defaults.batch_size})",
            f"{sps['tutorial']:,.0f}",
            f"{sps['default']:,.0f}",
            ratio_cell("default"),
        ),
        (
            "LeNet samples/s, batch 64 with on-device augmentation",
            f"{sps['tutorial']:,.0f}",
            f"{sps['augmented']:,.0f}",
            ratio_cell("augmented"),
        ),
    ]
    if "default_plain" in engines:
        rows.append(
            (
                "LeNet samples/s, the recipe with the fused CPU kernel off",
                f"{sps['tutorial']:,.0f}",
                f"{sps['default_plain']:,.0f}",
                ratio_cell("default_plain"),
            )
        )
    figures = {
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "rounds": args.repeats,
        "tutorial_sps": round(sps["tutorial"]),
        "engine_batch8_sps": round(sps["batch8"]),
        "engine_default_sps": round(sps["default"]),
        "engine_augmented_sps": round(sps["augmented"]),
        "ratio_batch8": round(median(ratios["batch8"]), 2),
        "ratio_default": round(median(ratios["default"]), 2),
        "ratio_batch8_range": [round(min(ratios["batch8"]), 2), round(max(ratios["batch8"]), 2)],
        "ratio_default_range": [round(min(ratios["default"]), 2), round(max(ratios["default"]), 2)],
        "cpu_kernel": kernel.describe(),
    }
    if "default_plain" in engines:
        figures.update(
            {
                "engine_default_plain_sps": round(sps["default_plain"]),
                "ratio_default_plain": round(median(ratios["default_plain"]), 2),
                "kernel_gain": round(median([r["default"] / r["default_plain"] for r in rounds]), 2),
            }
        )
    if not args.quick:
        # 2. time to accuracy ---------------------------------------------------------------------------------
        default = replace(TrainConfig(), device=str(device))
        reached_3, final_3 = time_to_accuracy(default, dataset, (0.985, 0.99))
        reached_10, final_10 = time_to_accuracy(replace(default, epochs=10), dataset, (0.985, 0.99))
        tutorial_model, _, _ = tutorial_train(dataset, device, seconds=args.budget)
        from engine.data import MNIST_NORMALIZATION

        tutorial_acc = evaluate(tutorial_model, dataset.test, MNIST_NORMALIZATION, device).accuracy
        # plan the one-cycle schedule to end at the budget, from the measured epoch time
        epoch_seconds = final_3.train_seconds / final_3.epochs_done
        planned = max(3, int(0.85 * args.budget / epoch_seconds))  # margin: epoch times vary a little
        engine_acc = budget_accuracy(replace(default, epochs=planned), dataset, args.budget, device)

        def fmt(value):
            return "not reached" if value is None else f"{value:.1f} s"

        rows += [
            ("default model: train s to 98.5 % (3-epoch recipe)", "-", fmt(reached_3[0.985]), ""),
            ("default model: train s to 99.0 % (10-epoch recipe)", "-", fmt(reached_10[0.99]), ""),
            (
                f"test accuracy after {args.budget:.0f} s of training (tutorial LeNet vs default model, {planned} epochs planned)",
                f"{tutorial_acc:.2%}",
                f"{engine_acc:.2%}",
                f"{(1 - tutorial_acc) / max(1 - engine_acc, 1e-9):.1f}x fewer errors",
            ),
        ]
        figures.update(
            {
                "seconds_to_98_5": reached_3[0.985],
                "accuracy_3_epochs": final_3.test_accuracy,
                "seconds_to_99_0": reached_10[0.99],
                "accuracy_10_epochs": final_10.test_accuracy,
                "budget_epochs": planned,
                "budget_s": args.budget,
                "tutorial_budget_accuracy": tutorial_acc,
                "engine_budget_accuracy": engine_acc,
            }
        )
    print_table(
        f"Training on {args.data} ({len(dataset.train):,} images), device {device}; LeNet's fused CPU "
        f"kernel {kernel.describe()}",
        rows,
    )
    print_json("training", figures)


if __name__ == "__main__":
    main()
