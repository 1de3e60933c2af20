"""The training configuration: one frozen dataclass that decides how a model is trained, and its limits."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from engine.errors import ConfigError
from engine.models import DEFAULT_MODEL, model_spec

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "step", "cosine", "onecycle")
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 65_536
MAX_SEED = 2**32 - 1  # each epoch's generator is seeded with seed * 1_000_003 + epoch, which must fit 64 bits


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides how a model is trained. Defaults train the default model well on a CPU."""

    model: str = DEFAULT_MODEL
    epochs: int = 3
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 6e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "onecycle"
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    detect_anomaly: bool = False
    log_every: int = 5

    def validate(self) -> TrainConfig:
        spec = model_spec(self.model)
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer '{self.optimizer}' (known: {', '.join(OPTIMIZERS)})")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule '{self.schedule}' (known: {', '.join(SCHEDULES)})")
        checks = [
            (1 <= self.epochs <= MAX_EPOCHS, f"epochs must be in 1..{MAX_EPOCHS}, got {self.epochs}"),
            (
                1 <= self.batch_size <= MAX_BATCH_SIZE,
                f"batch size must be in 1..{MAX_BATCH_SIZE}, got {self.batch_size}",
            ),
            (
                self.batch_size >= spec.min_batch_size,
                f"batch size must be at least {spec.min_batch_size} for {self.model}, whose batch normalisation "
                f"needs {spec.min_batch_size} images to normalise over, got {self.batch_size}",
            ),
            (math.isfinite(self.lr) and self.lr > 0, f"learning rate must be positive, got {self.lr}"),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}"),
            (
                1 <= self.log_every <= MAX_BATCH_SIZE,
                f"log interval must be in 1..{MAX_BATCH_SIZE}, got {self.log_every}",
            ),
            (0 <= self.seed <= MAX_SEED, f"seed must be in 0..{MAX_SEED}, got {self.seed}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def for_model(cls, model: str, **overrides: Any) -> TrainConfig:
        """The defaults with ``model``'s recipe from the registry applied, then ``overrides``."""
        return replace(cls(model=model), **{**model_spec(model).recipe, **overrides})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
