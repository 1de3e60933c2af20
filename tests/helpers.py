"""Small data sets the tests write themselves (a few hundred 28x28 images in real IDX files), and a way to
make training report a notice, and stand-in autosave files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engine.data import write_idx


def synthetic_digits(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Learnable images: class k is a bright bar at a class-specific place and angle, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    rng.shuffle(labels)
    images = np.zeros((count, 28, 28), dtype=np.float32)
    for i, label in enumerate(labels):
        row = 4 + 2 * label + rng.integers(-1, 2)
        if label % 2:
            images[i, row : row + 3, 4:24] = 1.0
        else:
            images[i, 4:24, row : row + 3] = 1.0
    images += rng.random(images.shape, dtype=np.float32) * 0.2
    return (np.clip(images, 0, 1) * 255).astype(np.uint8), labels.astype(np.uint8)


def write_dataset(folder: Path, train: int = 320, test: int = 100, compress: bool = True, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    for split, count, offset in (("train", train, 0), ("t10k", test, 1)):
        images, labels = synthetic_digits(count, seed + offset)
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", labels)
    return folder


def report_notice_before_training(monkeypatch, message: str) -> None:
    """Make every ``Trainer.run`` report ``message`` as a NoticeEvent before it trains, as the CUDA-graph
    fallback would (that path itself is tested in test_training.py); leaving a ``MonkeyPatch.context()`` ends it."""
    import engine.training

    original = engine.training.Trainer.run

    def run_with_notice(self, on_event=None, control=None, on_epoch_end=None):
        if on_event is not None:
            on_event(engine.events.NoticeEvent(message))
        return original(self, on_event, control, on_epoch_end)

    monkeypatch.setattr(engine.training.Trainer, "run", run_with_notice)


def write_autosaves(folder: Path, count: int) -> list[Path]:
    """``count`` stand-in autosave files, oldest first, a minute apart by modification time."""
    paths = []
    for i in range(count):
        path = folder / f"lenet-mnist-{i:03d}.pt"
        path.write_bytes(b"x")
        os.utime(path, (1_700_000_000 + 60 * i, 1_700_000_000 + 60 * i))
        paths.append(path)
    return paths
