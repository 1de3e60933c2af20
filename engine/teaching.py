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
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from engine.augment import apply_augmentation, draw_augmentation
from engine.checkpoint import Checkpoint, checkpoint_payload
from engine.data import Dataset, to_float
from engine.errors import DataError, ImageError
from engine.files import folder_problem
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
    files: tuple[Path, ...] = ()  # every file read, linked class folders followed: what no output may replace

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


def replay_for(checkpoint: Checkpoint) -> tuple[Dataset | None, str]:
    """The model's own training data where it is on this computer, else the built-in sample for a digit
    model; and a note when there is none (teaching then goes without replay, and may forget)."""
    from engine import data

    try:
        folder = checkpoint.data_folder()
        if folder is not None:
            return data.load_folder(folder, name=checkpoint.dataset_name), ""
        found = data.locate(checkpoint.dataset_name) if checkpoint.dataset_name in data.DATASETS else None
        if found is not None:
            return data.load_folder(found, name=checkpoint.dataset_name), ""
        if tuple(checkpoint.class_names) == data.DATASETS["mnist-sample"].class_names:
            return data.resolve("mnist-sample"), ""
    except DataError as exc:
        return None, f"no replay data ({exc}): taught without it, the model may forget some of what it knew"
    return None, (
        "none of the model's training data is on this computer: taught without replay, it may "
        "forget some of what it knew"
    )


def load_samples(folder: Path | str, class_names: tuple[str, ...]) -> Samples:
    """Every image under ``folder/<class name>/``; unreadable or blank ones are skipped and counted."""
    folder = Path(folder).expanduser()
    problem = folder_problem(folder)
    if problem is not None:
        raise DataError(f"{folder}: folder of samples {problem}")
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in subfolders if p.name not in class_names]
    if unknown:
        raise DataError(
            f"{folder}: subfolders {', '.join(unknown[:5])} are not classes of the model "
            f"(its classes: {', '.join(class_names)})"
        )
    images, labels, skipped, files = [], [], 0, []
    for sub in subfolders:
        for path in sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            files.append(path)
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
        raise DataError(
            f"{folder}: holds no readable samples (expected {folder}/<digit>/*.png)"
            + (f"; {skipped} files skipped" if skipped else "")
        )
    if len(set(labels)) < 2:
        raise DataError(
            f"{folder}: samples of one class only ({class_names[labels[0]]}); teaching needs at "
            "least two, or the model would learn to answer that class to everything"
        )
    return Samples(torch.from_numpy(np.stack(images)), torch.tensor(labels), skipped, folder, tuple(files))


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


def fine_tune(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    replay: Dataset | None,
    normalization: Any,
    steps: int = STEPS,
    seed: int = 0,
) -> torch.nn.Module:
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


def teach(
    checkpoint: Checkpoint, samples: Samples, replay: Dataset | None, steps: int = STEPS, base_name: str | None = None
) -> TeachResult:
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
    taught = replace(
        checkpoint,
        model=model,
        optimizer_state=None,  # the base's moments fit other weights
        taught={
            "samples": len(samples),
            "steps": steps,
            "base": base_name or checkpoint.display_name,
            "held_out": int(len(held)),
            "base_accuracy": base_accuracy,
            "taught_accuracy": taught_accuracy,
        },
    )
    payload = checkpoint_payload(taught)
    return TeachResult(
        payload, len(samples), time.perf_counter() - start, int(len(held)), base_accuracy, taught_accuracy
    )


# ------------------------------------------------------------------------------------------------ the store

PREPARED = ".prepared"  # each sample's 28x28 form, beside the class folders (hidden: not a class)


def samples_dir() -> Path:
    """Where the app keeps the samples its user labels (That's a ...): the user data folder's ``samples``."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("digit-studio", appauthor=False)) / "samples"


def _write_bytes(temporary: str, data: bytes) -> None:
    Path(temporary).write_bytes(data)


def save_sample(folder: Path, label: str, drawing: np.ndarray, prepared: np.ndarray) -> Path:
    """Keep a drawing (uint8, as drawn) as a sample of ``label``, and its 28x28 form; the drawing's path."""
    from datetime import datetime

    from engine.files import atomic_write

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    path = folder / label / f"{stamp}.png"
    for target, pixels in ((path, drawing), (folder / PREPARED / label / f"{stamp}.png", prepared)):
        target.parent.mkdir(parents=True, exist_ok=True)
        image = _png(np.asarray(pixels))
        atomic_write(target, partial(_write_bytes, data=image))
    return path


def _png(pixels: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def list_samples(folder: Path, class_names: tuple[str, ...]) -> dict[str, list[Path]]:
    """Each class's sample files, oldest first (every class listed, empty ones too)."""
    found: dict[str, list[Path]] = {name: [] for name in class_names}
    for name in class_names:
        sub = folder / name
        if sub.is_dir():
            found[name] = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return found


def move_sample(path: Path, label: str | None) -> Path | None:
    """Relabel a sample (move it, with its 28x28 form, to ``label``'s folder), or delete it (``label`` None)."""
    folder = path.parent.parent
    prepared = folder / PREPARED / path.parent.name / path.name
    if label is None:
        path.unlink(missing_ok=True)
        prepared.unlink(missing_ok=True)
        return None
    target = folder / label / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    path.replace(target)
    if prepared.exists():
        (folder / PREPARED / label).mkdir(parents=True, exist_ok=True)
        prepared.replace(folder / PREPARED / label / path.name)
    return target
