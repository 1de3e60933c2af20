"""Optimisers and learning rates: the schedule, the optimiser factory, and moving optimiser state between
devices (a checkpoint saved on one device resumes on any other)."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from engine.checkpoint_validation import check_optimizer_state
from engine.config import TrainConfig
from engine.errors import CheckpointError, ConfigError


def steps_per_epoch(images: int, batch_size: int, min_batch_size: int = 1) -> int:
    """Batches in an epoch: a last, partial batch counts unless it is smaller than the model can train on
    (one image, for batch norm), when its images sit the epoch out. The shuffle differs every epoch, so
    it is never the same images; failing on it would lose a whole epoch's work at its very end."""
    full, rest = divmod(images, batch_size)
    return full + (1 if rest >= min_batch_size else 0)


def learning_rate(config: TrainConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """The learning rate for optimiser step ``step`` (0-based) of a run planned to last ``total_steps``."""
    base = config.lr
    t = min(step / max(total_steps, 1), 1.0)
    if config.schedule == "none":
        return base
    if config.schedule == "step":
        return base * 0.7 ** (step // max(steps_per_epoch, 1))
    if config.schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * t))
    # one-cycle: cosine warm-up from base/25 over the first 25 %, then cosine down to base/1e4
    warm = 0.25
    if t < warm:
        start = base / 25
        return start + (base - start) * 0.5 * (1 - math.cos(math.pi * t / warm))
    end = base / 1e4
    return end + (base - end) * 0.5 * (1 + math.cos(math.pi * (t - warm) / (1 - warm)))


def fused_optimizer(device: torch.device) -> bool:
    """Whether to use the fused (one kernel for all parameters) optimiser implementations.

    PyTorch defaults to a per-parameter loop on the CPU; the fused step is 10-15 % faster for the
    small models here (benchmarks/bench_training.py) and exists for SGD, Adam and AdamW on CPU and CUDA.
    """
    return device.type in ("cpu", "cuda")


def make_optimizer(
    config: TrainConfig, model: nn.Module, fused: bool = False, capturable: bool = False
) -> torch.optim.Optimizer:
    """``capturable`` makes Adam(W) keep its step counters on the device, so a CUDA graph can hold its step."""
    params = model.parameters()
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, fused=fused or None
        )
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return cls(
        params,
        lr=config.lr,
        betas=(config.momentum, 0.999),
        weight_decay=config.weight_decay,
        fused=fused or None,
        capturable=capturable,
    )


IMPLEMENTATION_FLAGS = ("fused", "capturable", "foreach", "differentiable")


def portable_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimiser's state as CPU data with a plain-number learning rate, loadable on any device."""
    state = to_cpu(optimizer.state_dict())
    state["param_groups"] = [{**group, "lr": float(group["lr"])} for group in state["param_groups"]]
    return state


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a saved optimiser state into an optimiser built for this device.

    A state dict carries the implementation flags (``fused``, ``capturable``, ...) of the optimiser
    that saved it, and PyTorch would adopt them: a checkpoint from a GPU run resumed on the CPU would
    then fail at its first step. The flags are this optimiser's own instead; PyTorch then places
    ``step`` counters where that implementation wants them.
    """
    own = optimizer.param_groups[0]
    flags = {key: own[key] for key in IMPLEMENTATION_FLAGS if key in own}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    try:
        check_optimizer_state("saved state", state, params)  # a wrong-sized moment crashes the fused kernel
    except CheckpointError as exc:
        raise ConfigError(
            f"the saved optimiser state does not fit a {type(optimizer).__name__} optimiser for this model ({exc})"
        ) from None
    try:
        groups = [{**group, **flags, "lr": float(group["lr"])} for group in state["param_groups"]]
        optimizer.load_state_dict({**state, "param_groups": groups})
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(
            f"the saved optimiser state does not fit a {type(optimizer).__name__} optimiser for this model ({exc})"
        ) from exc
    _match_parameter_layouts(optimizer)


def _match_parameter_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give every per-parameter state tensor (Adam's moments, SGD's momentum) its parameter's memory layout.

    A CPU run keeps convolution weights channels-last and a CUDA run does not, and loading a state keeps
    the strides it was saved with. PyTorch's fused AdamW pairs elements by memory position, not by index:
    on the CPU, moments from a GPU run then silently updated the wrong weights (the moments of one
    optimiser step differed by up to 0.6 from a same-layout load); on CUDA the step failed.
    """
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.shape == param.shape and value.stride() != param.stride():
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(v) for v in value)
    return copy.deepcopy(value)
