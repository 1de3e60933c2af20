"""Evaluating a model on a split: accuracy, per-class accuracy, confusion matrix, mistakes.

The CLI's ``evaluate`` and the GUI's Evaluate view both call :func:`evaluate`, so they always agree.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from engine.data import Normalization, Split, to_float
from engine.devices import copy_to
from engine.files import atomic_write


@dataclass(frozen=True)
class EvaluationResult:
    """Plain numpy results, safe to hand to another thread."""

    accuracy: float
    loss: float
    per_class_accuracy: np.ndarray  # (C,), NaN for a class with no samples
    confusion_matrix: np.ndarray  # (C, C) int64, rows = true label, columns = predicted
    predictions: np.ndarray  # (N,) int64
    probabilities: np.ndarray  # (N, C) float32
    labels: np.ndarray  # (N,) int64

    @property
    def count(self) -> int:
        return int(self.labels.shape[0])

    @property
    def mistakes(self) -> int:
        return int((self.predictions != self.labels).sum())

    @property
    def misclassified(self) -> np.ndarray:
        """Indices of wrongly predicted samples, most confident mistakes first."""
        wrong = np.flatnonzero(self.predictions != self.labels)
        confidence = self.probabilities[wrong, self.predictions[wrong]]
        return wrong[np.argsort(-confidence, kind="stable")]

    def pair_indices(self, true_label: int, predicted: int) -> np.ndarray:
        """Indices of samples of class ``true_label`` predicted as ``predicted``, most confident first."""
        hits = np.flatnonzero((self.labels == true_label) & (self.predictions == predicted))
        return hits[np.argsort(-self.probabilities[hits, predicted], kind="stable")]

    def most_confused(self, limit: int = 5) -> list[tuple[int, int, int]]:
        """The commonest mistakes as (true label, predicted label, count), most frequent first; ties in
        the matrix's order. Only pairs that occur."""
        off_diagonal = self.confusion_matrix - np.diag(np.diag(self.confusion_matrix))
        order = np.argsort(-off_diagonal, axis=None, kind="stable")[:limit]
        cells = [np.unravel_index(int(i), off_diagonal.shape) for i in order]
        return [(int(r), int(c), int(off_diagonal[r, c])) for r, c in cells if off_diagonal[r, c] > 0]

    def to_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "loss": self.loss,
            "per_class_accuracy": [None if np.isnan(a) else float(a) for a in self.per_class_accuracy],
            "confusion_matrix": self.confusion_matrix.tolist(),
            "count": self.count,
            "misclassified": self.mistakes,
        }


def abbreviate(name: str, width: int = 4) -> str:
    """A class name that fits a narrow column: ``Trouser`` -> ``Tro.``."""
    return name if len(name) <= width else name[: width - 1] + "."


def text_report(result: EvaluationResult, class_names: Sequence[str], examples: int = 5) -> str:
    """Per-class accuracy, the confusion matrix and the commonest mistakes with their test image
    indices, as plain text for a terminal (the command line's ``evaluate``)."""
    names = [str(n) for n in class_names]
    label_width = max(len(n) for n in names)
    lines = [
        f"accuracy {result.accuracy:.2%}, loss {result.loss:.4f} ({result.mistakes} of {result.count} wrong)",
        "",
        "per class:",
    ]
    for name, accuracy, count in zip(names, result.per_class_accuracy, result.confusion_matrix.sum(1)):
        shown = "no test images" if np.isnan(accuracy) else f"{accuracy:.2%} of {int(count)}"
        lines.append(f"  {name:>{label_width}}  {shown}")
    cell = max(len(str(int(result.confusion_matrix.max()))), 4) + 1
    lines += [
        "",
        "confusion matrix (rows: true class, columns: predicted):",
        " " * (label_width + 2) + "".join(f"{abbreviate(n, cell - 1):>{cell}}" for n in names),
    ]
    for name, row in zip(names, result.confusion_matrix):
        lines.append(f"  {name:>{label_width}}" + "".join(f"{int(v):>{cell}}" for v in row))
    confused = result.most_confused()
    if confused:
        lines += ["", "commonest mistakes (test image indices, the most confident first):"]
        for true_label, predicted, count in confused:
            indices = result.pair_indices(true_label, predicted)
            shown = ", ".join(f"#{int(i)}" for i in indices[:examples]) + (", ..." if count > examples else "")
            lines.append(f"  {names[true_label]} read as {names[predicted]}: {count} ({shown})")
    return "\n".join(lines)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    flat = labels.astype(np.int64) * num_classes + predictions.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: Split,
    normalization: Normalization,
    device: torch.device | str = "cpu",
    batch_size: int = 1000,
    num_classes: int = 10,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> EvaluationResult:
    """Run ``model`` over ``split``; ``progress(done, total)`` is called after each batch."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    total = len(split)
    probabilities = np.empty((total, num_classes), dtype=np.float32)
    loss_sum = 0.0
    try:
        for start in range(0, total, batch_size):
            if cancelled is not None and cancelled():
                raise InterruptedError("evaluation cancelled")
            images = copy_to(split.images[start : start + batch_size], device)
            labels = copy_to(split.labels[start : start + batch_size], device)
            logits = model(to_float(images, normalization)).float()
            loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
            probabilities[start : start + len(labels)] = torch.softmax(logits, 1).cpu().numpy()
            if progress is not None:
                progress(min(start + batch_size, total), total)
    finally:
        model.train(was_training)
    labels_np = split.labels.numpy()
    predictions = probabilities.argmax(1)
    matrix = confusion_matrix(labels_np, predictions, num_classes)
    per_class_total = matrix.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(per_class_total > 0, np.diag(matrix) / per_class_total, np.nan)
    return EvaluationResult(
        accuracy=float((predictions == labels_np).mean()),
        loss=loss_sum / total,
        per_class_accuracy=per_class,
        confusion_matrix=matrix,
        predictions=predictions,
        probabilities=probabilities,
        labels=labels_np,
    )


def write_csv(
    result: EvaluationResult,
    class_names: tuple[str, ...] | list[str],
    path: str | Path,
    model: str = "",
    dataset: str = "",
) -> Path:
    """What was evaluated and the overall accuracy, then per-class accuracy, then the confusion matrix
    (rows = true class), as one CSV file.

    Written atomically (:func:`engine.files.atomic_write`): a failure (OSError) leaves a file of that name
    as it was."""

    def write(temporary: str) -> None:
        with open(temporary, "w", newline="") as handle:
            writer = csv.writer(handle)
            for key, value in (
                ("model", model),
                ("data set", dataset),
                ("accuracy", f"{result.accuracy:.6f}"),
                ("test images", result.count),
                ("loss", f"{result.loss:.6f}"),
            ):
                writer.writerow([key, value])
            writer.writerow([])
            writer.writerow(["class", "accuracy", "count"])
            counts = result.confusion_matrix.sum(1)
            for name, accuracy, count in zip(class_names, result.per_class_accuracy, counts):
                writer.writerow([name, "" if np.isnan(accuracy) else f"{accuracy:.6f}", int(count)])
            writer.writerow([])
            writer.writerow(["true \\ predicted", *class_names])
            for name, row in zip(class_names, result.confusion_matrix):
                writer.writerow([name, *(int(v) for v in row)])

    return atomic_write(Path(path), write)


def read_csv(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Read back :func:`write_csv`: (class names, per-class accuracy, confusion matrix)."""
    with Path(path).open(newline="") as handle:
        rows = list(csv.reader(handle))
    rows = rows[rows.index(["class", "accuracy", "count"]) :]
    blank = rows.index([])
    names = [r[0] for r in rows[1:blank]]
    accuracy = np.array([float(r[1]) if r[1] else np.nan for r in rows[1:blank]])
    matrix = np.array([[int(v) for v in r[1:]] for r in rows[blank + 2 :]], dtype=np.int64)
    return names, accuracy, matrix
