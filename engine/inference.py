"""Recognising single images with a trained model, and the bundled default model.

A :class:`Predictor` owns its own copy of the weights on the CPU (a loaded checkpoint or a snapshot
published by a training worker), so prediction never reads tensors a training loop is writing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.data import Normalization
from engine.errors import CheckpointError
from engine.models import build_model
from engine.preprocess import PreparedInput, preprocess
from engine.shipped import shipped

BUNDLED_MODEL = shipped("models", "digitnet-mnist.pt")
UNSURE_BELOW = 0.6  # a top probability under this is "not sure" (README, Using the app)


@dataclass(frozen=True)
class Prediction:
    """``label`` is None for an empty image; ``probabilities`` then is all zeros."""

    label: int | None
    probabilities: np.ndarray  # (C,) float32, sums to 1 unless empty
    prepared: PreparedInput
    top_logit: float = 0.0  # the winning class's logit: lower for shapes less like anything learnt

    @property
    def confidence(self) -> float:
        return float(self.probabilities[self.label]) if self.label is not None else 0.0

    @property
    def doubt(self) -> str | None:
        """Why this reading should not be trusted ("unlike any digit: ...", "low confidence"), or None."""
        if self.label is None:
            return None
        unlike = self.prepared.unlike_digit()
        if unlike:
            return f"unlike any digit: {unlike}"
        return "low confidence" if self.confidence < UNSURE_BELOW else None


class Predictor:
    """A model ready to classify drawings: weights on the CPU, in eval mode, never shared."""

    def __init__(
        self, model: nn.Module, normalization: Normalization, class_names: tuple[str, ...], source: str
    ) -> None:
        self.model = model.cpu().eval()
        self.normalization = normalization
        self.class_names = class_names
        self.source = source

    @classmethod
    def from_checkpoint(cls, checkpoint: Any, source: str | None = None) -> Predictor:
        return cls(
            checkpoint.model, checkpoint.normalization, checkpoint.class_names, source or checkpoint.display_name
        )

    @classmethod
    def from_state(
        cls,
        architecture: str,
        model_kwargs: dict[str, Any],
        state: dict[str, torch.Tensor],
        normalization: Normalization,
        class_names: tuple[str, ...],
        source: str,
    ) -> Predictor:
        model = build_model(architecture, **model_kwargs)
        model.load_state_dict(state, strict=True)
        return cls(model, normalization, class_names, source)

    @torch.inference_mode()
    def predict_prepared(self, prepared: PreparedInput) -> Prediction:
        if prepared.empty:
            return Prediction(None, np.zeros(len(self.class_names), np.float32), prepared)
        logits = self.model(prepared.tensor(self.normalization)).float()
        probabilities = torch.softmax(logits, 1)[0].numpy()
        return Prediction(int(probabilities.argmax()), probabilities, prepared, float(logits.max()))

    @torch.inference_mode()
    def predict_batch(self, prepared: list[PreparedInput]) -> list[Prediction]:
        """Several prepared inputs in one forward pass (the digits of a number)."""
        filled = [p for p in prepared if not p.empty]
        rows: Iterator[tuple[np.ndarray, float]] = iter([])
        if filled:
            logits = self.model(torch.cat([p.tensor(self.normalization) for p in filled])).float()
            rows = iter(zip(torch.softmax(logits, 1).numpy(), logits.max(1).values.tolist(), strict=True))
        results = []
        for p in prepared:
            if p.empty:
                results.append(Prediction(None, np.zeros(len(self.class_names), np.float32), p))
            else:
                probabilities, top = next(rows)
                results.append(Prediction(int(probabilities.argmax()), probabilities, p, top))
        return results

    def predict(self, image: Any) -> Prediction:
        """Preprocess a drawing or photo (numpy array or PIL image) and classify it."""
        return self.predict_prepared(preprocess(image))

    def saliency(self, prepared: PreparedInput, label: int | None = None) -> np.ndarray:
        """Gradient x input for ``label`` (default: the top class): which pixels drove the prediction.

        Returns a 28x28 float32 map in [0, 1] (zeros for an empty input).
        """
        if prepared.empty:
            return np.zeros_like(prepared.pixels)
        x = prepared.tensor(self.normalization).clone().requires_grad_(True)
        with torch.enable_grad():
            logits = self.model(x)
            target = int(logits.argmax()) if label is None else label
            # the input's gradient alone: backward() would also fill (and keep) every weight's .grad
            (gradient,) = torch.autograd.grad(logits[0, target], x)
        pixels = torch.from_numpy(prepared.pixels)
        attribution = (gradient[0, 0] * pixels).clamp(min=0)
        peak = float(attribution.max())
        return (attribution / peak).numpy().astype(np.float32) if peak > 0 else np.zeros_like(prepared.pixels)


def load_bundled() -> Predictor:
    """The default model shipped in ``resources/models``."""
    from engine import checkpoint

    if not BUNDLED_MODEL.is_file():
        raise CheckpointError(f"{BUNDLED_MODEL}: the bundled default model is missing from this installation")
    return Predictor.from_checkpoint(checkpoint.load(BUNDLED_MODEL), source="bundled default model")
