"""Teaching a model a user's handwriting: fine-tune it on personal samples, without forgetting.

Personal samples are plain image files in the ImageFolder layout, ``SAMPLES/<class name>/<any>.png``
(drawn or photographed, any size). Each is read by the one image loader and prepared by the same
``preprocess`` as the canvas and ``predict``. Teaching fine-tunes a copy of the model on them, with
augmentation, mixing every batch half and half with replay from the model's own training data so that it
keeps what it knew; the base model is never changed. Some samples of each class are held out first, so
that the base and the taught model can be compared on drawings the taught one never trained on.
tests/test_teaching.py and benchmarks/bench_teaching.py measure it.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from engine.augment import apply_augmentation, draw_augmentation
from engine.checkpoint import Checkpoint, checkpoint_payload
from engine.data import Dataset, to_float
from engine.errors import DataError, ImageError
from engine.images import IMAGE_SUFFIXES, load_image
from engine.preprocess import preprocess

STEPS = 60  # fine-tuning steps: about 2 s on a 2-core CPU for the default model (benchmarks/bench_teaching.py)
BATCH = 64  # half personal samples, half replay
LEARNING_RATE = 1e-3
HOLD_OUT = 0.3  # of each class's samples, where it has at least MIN_TO_HOLD_OUT
MIN_TO_HOLD_OUT = 4


@dataclass(frozen=True)
class Samples:
    """Prepared personal samples: ``images`` uint8 (N, 28, 28), ink bright (as the data sets'); ``labels``."""

    images: torch.Tensor
    labels: torch.Tensor
    skipped: int  # files that could not be read, or held no ink
    folder: Path

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class TeachResult:
    payload: dict[str, Any]  # the taught model as a checkpoint payload
    samples: int
    seconds: float
    held_out: int  # personal samples neither model trained on (0: too few to hold any out)
    base_accuracy: float | None  # on the held-out samples
    taught_accuracy: float | None


def load_samples(folder: Path | str, class_names: tuple[str, ...]) -> Samples:
    """Every image under ``folder/<class name>/``; unreadable or blank ones are skipped and counted."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder of samples")
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir())
    unknown = [p.name for p in subfolders if p.name not in class_names]
    if unknown:
        raise DataError(f"{folder}: subfolders {', '.join(unknown[:5])} are not classes of the model "
                        f"(its classes: {', '.join(class_names)})")
    images, labels, skipped = [], [], 0
    for sub in subfolders:
        for path in sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            try:
                prepared = preprocess(load_image(path))
            except ImageError:
                skipped += 1
                continue
            if prepared.empty:
                skipped += 1
                continue
            images.append(np.round(prepared.pixels * 255).astype(np.uint8))
            labels.append(class_names.index(sub.name))
    if not images:
        raise DataError(f"{folder}: holds no readable samples (expected {folder}/<digit>/*.png)"
                        + (f"; {skipped} files skipped" if skipped else ""))
    if len(set(labels)) < 2:
        raise DataError(f"{folder}: samples of one class only ({class_names[labels[0]]}); teaching needs at "
                        "least two, or the model would learn to answer that class to everything")
    return Samples(torch.from_numpy(np.stack(images)), torch.tensor(labels), skipped, folder)


def hold_out(samples: Samples, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices to train on and to hold out: HOLD_OUT of each class with MIN_TO_HOLD_OUT samples or more."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    labels = samples.labels.numpy()
    for label in np.unique(labels):
        indices = rng.permutation(np.flatnonzero(labels == label))
        count = int(math.floor(len(indices) * HOLD_OUT)) if len(indices) >= MIN_TO_HOLD_OUT else 0
        held += indices[:count].tolist()
        train += indices[count:].tolist()
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(held), dtype=np.int64)


@torch.inference_mode()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, normalization: Any) -> float:
    model.eval()
    predictions = model(to_float(images, normalization)).argmax(1)
    return float((predictions == labels).float().mean())


def fine_tune(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, replay: Dataset | None,
              normalization: Any, steps: int = STEPS, seed: int = 0) -> torch.nn.Module:
    """A copy of ``model`` trained ``steps`` batches on the samples (augmented), each batch mixed half and
    half with replay images when there are any."""
    model = copy.deepcopy(model).cpu().train()
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=1e-4)
    half = BATCH // 2 if replay is not None else BATCH
    for _ in range(steps):
        pick = torch.randint(len(labels), (half,), generator=generator)
        x = to_float(images[pick])
        x = apply_augmentation(x, draw_augmentation(half, x.shape[-1], generator))
        y = labels[pick]
        if replay is not None:
            other = torch.randint(len(replay.train), (BATCH - half,), generator=generator)
            x = torch.cat([x, to_float(replay.train.images[other])])
            y = torch.cat([y, replay.train.labels[other]])
        loss = F.cross_entropy(model(normalization.apply_(x)), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()


def teach(checkpoint: Checkpoint, samples: Samples, replay: Dataset | None, steps: int = STEPS,
          base_name: str | None = None) -> TeachResult:
    """Fine-tune ``checkpoint``'s model on ``samples``. Held-out samples (where there are enough) measure
    the base and the taught model; the model returned is then taught on every sample."""
    start = time.perf_counter()
    norm = checkpoint.normalization
    train, held = hold_out(samples)
    base_accuracy = taught_accuracy = None
    if len(held):
        base_accuracy = accuracy(checkpoint.model, samples.images[held], samples.labels[held], norm)
        trial = fine_tune(checkpoint.model, samples.images[train], samples.labels[train], replay, norm, steps)
        taught_accuracy = accuracy(trial, samples.images[held], samples.labels[held], norm)
    model = fine_tune(checkpoint.model, samples.images, samples.labels, replay, norm, steps)
    taught = replace(checkpoint, model=model, optimizer_state=None,  # the base's moments fit other weights
                     taught={"samples": len(samples), "steps": steps, "base": base_name or checkpoint.display_name,
                             "held_out": int(len(held)), "base_accuracy": base_accuracy,
                             "taught_accuracy": taught_accuracy})
    payload = checkpoint_payload(taught)
    return TeachResult(payload, len(samples), time.perf_counter() - start, int(len(held)), base_accuracy,
                       taught_accuracy)
