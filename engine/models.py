"""The model registry.

A checkpoint stores an architecture's registry name and its keyword arguments, never a pickled class,
so a model is rebuilt from here and only then given its weights (see :mod:`engine.checkpoint`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from engine.errors import ConfigError
from engine.lenet_features import features


class LeNet(nn.Module):
    """The classic 2-conv / 3-linear LeNet of the original PyTorch tutorial, sized for 28x28 input.

    44,426 parameters and the tutorial's function exactly, so benchmarks compare like with like. The
    forward pools before the ReLU, which computes the same values (max-pooling and ReLU commute, both
    being monotone) with a quarter of the ReLU work (tests/test_models.py checks the equivalence).
    ``fused``: run the convolutional part as one CPU kernel where it applies (engine.lenet_features);
    off by default, so the forward is plain PyTorch; the Trainer turns it on for CPU training.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.fused = False
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = features(x, self.conv1, self.conv2, self.fused)  # conv1, pool, ReLU, conv2, pool, ReLU, flattened
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DigitNet(nn.Module):
    """The default model: a small VGG-style CNN with batch norm, sized to train in seconds on a CPU.

    Three 3x3 conv stages (28 -> 14 -> 7) keep most computation at low resolution; batch norm lets a
    high one-cycle learning rate converge within a couple of epochs; a global-average head keeps the
    parameter count (and the bundled file) small.
    """

    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv_bn(1, w),
            nn.MaxPool2d(2),  # 14x14
            _conv_bn(w, 2 * w),
            nn.MaxPool2d(2),  # 7x7
            _conv_bn(2 * w, 4 * w),
            _conv_bn(4 * w, 4 * w),
            nn.MaxPool2d(2),  # 3x3
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(4 * w * 3 * 3, 128),
            nn.BatchNorm1d(128),
            nn.ReLU(inplace=True),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture: how to build it and the training recipe it is known to do well with.

    ``recipe`` overrides :class:`engine.training.TrainConfig` defaults for this model (see
    ``TrainConfig.for_model``): the default CNN wants augmentation for drawn digits, while LeNet, tiny
    and augmentation-free in the tutorial, trains fastest on large plain batches.
    ``default_layout_up_to`` is the largest batch size at which this model trains faster on a CPU in
    PyTorch's default memory layout than channels-last (benchmarks/bench_training.py; 0: none).

    ``min_batch_size``: the fewest images a training batch may have. Batch normalisation computes its
    statistics over the batch, so a model with it cannot train on one image (PyTorch raises).

    ``limits``: the inclusive range of each whole-number argument. A checkpoint names its arguments, so
    they are checked before a model is built: ``width=2500`` would otherwise build a 6 GB model.
    """

    name: str
    description: str
    builder: Callable[..., nn.Module]
    defaults: dict[str, Any]
    recipe: dict[str, Any] = field(default_factory=dict)
    default_layout_up_to: int = 0
    min_batch_size: int = 1
    limits: dict[str, tuple[int, int]] = field(default_factory=dict)


MAX_CLASSES = 1000

MODELS: dict[str, ModelSpec] = {
    "digitnet": ModelSpec(
        "digitnet",
        "Small batch-norm CNN, the default: 99%+ on MNIST in a few epochs on a CPU",
        DigitNet,
        {"num_classes": 10, "width": 16},
        min_batch_size=2,
        limits={"num_classes": (2, MAX_CLASSES), "width": (1, 64)},  # width 64: 2.2M parameters
    ),
    "lenet": ModelSpec(
        "lenet",
        "Classic LeNet from the PyTorch tutorial (2 conv + 3 linear layers)",
        LeNet,
        {"num_classes": 10},
        {"batch_size": 128, "augment": False},
        default_layout_up_to=8,
        limits={"num_classes": (2, MAX_CLASSES)},
    ),
}

DEFAULT_MODEL = "digitnet"


def model_names() -> list[str]:
    return list(MODELS)


def model_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; an unknown name is a ConfigError listing the known ones."""
    spec = MODELS.get(name)
    if spec is None:
        raise ConfigError(f"unknown model '{name}' (known: {', '.join(MODELS)})")
    return spec


def model_arguments(name: str, **kwargs: Any) -> dict[str, Any]:
    """The registry defaults with ``kwargs`` applied, each checked against the registry's limits."""
    spec = model_spec(name)
    unknown = sorted(str(key) for key in kwargs if key not in spec.defaults)
    if unknown:
        raise ConfigError(f"model '{name}' has no argument {', '.join(unknown)} (it takes {', '.join(spec.defaults)})")
    args = {**spec.defaults, **kwargs}
    for key, value in args.items():
        low, high = spec.limits.get(key, (None, None))
        if low is None or high is None:
            continue
        if type(value) is not int:  # bool is an int too, and a float width would build a different model
            raise ConfigError(f"model '{name}': {key} must be a whole number, got {type(value).__name__}")
        if not low <= value <= high:
            raise ConfigError(f"model '{name}': {key} must be in {low}..{high}, got {value}")
    return args


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """A freshly initialised model; ``kwargs`` override the registry defaults (within its limits)."""
    args = model_arguments(name, **kwargs)
    return MODELS[name].builder(**args)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
