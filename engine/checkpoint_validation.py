"""Checking a checkpoint before anything is built from it: sizes first, then every field and tensor.

A checkpoint is input from anywhere (a download, a colleague, an attacker), so nothing in it is trusted:

1. :func:`check_archive` reads the zip's directory only and refuses a file whose members would unpack
   to more than a Digit Studio checkpoint can hold, before PyTorch inflates anything;
2. :func:`check_payload` checks every field's type and range after the safe unpickler ran, and returns
   the values in the types the app uses;
3. :func:`check_model_state` and :func:`check_optimizer_state` check every tensor against the model's own
   (shape, dtype, layout, finite values), so a fused optimiser kernel never runs over memory it does not
   own and no NaN reaches a prediction.

Each problem is a :class:`engine.errors.CheckpointError` naming the file and the field.
tests/test_hostile_checkpoints.py holds the crafted files these checks refuse.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.config import MAX_EPOCHS
from engine.errors import CheckpointError, ConfigError
from engine.models import MODELS, model_arguments

# A digitnet of the widest allowed width with its Adam state is about 27 MB. PyTorch's safe unpickler is
# pure Python and takes about half a second per MB of the worst pickle (a list of small numbers), so the
# metadata is capped at 6 MB: a history of 250,000 logged steps (1,000 MNIST epochs at the default
# logging interval) takes 3.5 MB.
MAX_TENSOR_BYTES = 128 * 2**20
MAX_PICKLE_BYTES = 6 * 2**20
MAX_MEMBERS = 10_000
MAX_HISTORY_POINTS = 250_000
MAX_TEXT = 10_000  # characters in any string field
MAX_INT = 2**53  # step counters and other counts: exact as a float, and far beyond any real run


def fail(where: str, problem: str) -> CheckpointError:
    return CheckpointError(f"{where}: {problem}")


# ------------------------------------------------------------------------------------------------ archive


def check_archive(path: Path) -> None:
    """Refuse a zip whose declared member sizes exceed what a checkpoint holds (a decompression bomb)."""
    try:
        with path.open("rb") as handle:
            end = zipfile._EndRecData(handle)  # type: ignore[attr-defined]  # the end record alone: how many entries the directory lists
        if end is None:
            raise zipfile.BadZipFile("no end of central directory")
        entries = end[zipfile._ECD_ENTRIES_TOTAL]  # type: ignore[attr-defined]
        if entries > MAX_MEMBERS:
            raise fail(str(path), f"lists {entries:,} entries, far more than any checkpoint: not a checkpoint")
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):  # the last: an entry
        # claiming a zip version Python cannot read (tests/test_fuzz.py)
        raise fail(str(path), "corrupt or truncated checkpoint file (its zip directory cannot be read)") from None
    pickles = sum(m.file_size for m in members if m.filename.endswith(".pkl"))
    tensors = sum(m.file_size for m in members if not m.filename.endswith(".pkl"))
    if pickles > MAX_PICKLE_BYTES or tensors > MAX_TENSOR_BYTES:
        total = (pickles + tensors) / 2**20
        raise fail(
            str(path),
            f"would unpack to {total:,.0f} MB, more than any Digit Studio checkpoint holds "
            f"(at most {MAX_TENSOR_BYTES // 2**20} MB of weights and {MAX_PICKLE_BYTES // 2**20} MB "
            "of other data): refused",
        )


# ------------------------------------------------------------------------------------------------ values


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return (is_int(value) or isinstance(value, float)) and not isinstance(value, bool)


def whole(where: str, field: str, value: Any, low: int = 0, high: int = MAX_INT) -> int:
    if not is_int(value) or not low <= value <= high:
        raise fail(where, f"{field} must be a whole number in {low}..{high}, got {describe(value)}")
    return int(value)


def finite(value: Any) -> bool:
    """Whether ``value`` is a real number that fits a float (a 400-digit int does not)."""
    if not is_number(value):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def number(where: str, field: str, value: Any, low: float = -math.inf, high: float = math.inf) -> float:
    if not finite(value) or not low <= float(value) <= high:
        raise fail(where, f"{field} must be a finite number in [{low:g}, {high:g}], got {describe(value)}")
    return float(value)


def text(where: str, field: str, value: Any, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise fail(where, f"{field} must be text, got {describe(value)}")
    return value


def mapping(where: str, field: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise fail(where, f"{field} must be a dictionary, got {describe(value)}")
    return value


def sequence(where: str, field: str, value: Any, limit: int) -> list:
    if not isinstance(value, (list, tuple)):
        raise fail(where, f"{field} must be a list, got {describe(value)}")
    if len(value) > limit:
        raise fail(where, f"{field} has {len(value):,} entries, more than the {limit:,} a checkpoint may hold")
    return list(value)


def describe(value: Any) -> str:
    """A short, safe description of a value of any type (never its full repr: it may be huge or nested)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if is_number(value):
        return f"{value:g}" if isinstance(value, float) else (str(value) if abs(value) < 10**30 else "a huge number")
    if isinstance(value, str):
        return repr(value[:40] + ("..." if len(value) > 40 else ""))
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


# ------------------------------------------------------------------------------------------------ fields


def check_architecture(where: str, value: Any) -> tuple[str, dict[str, Any]]:
    arch = mapping(where, "architecture", value)
    name = arch.get("name")
    if not isinstance(name, str) or name not in MODELS:
        raise fail(where, f"unknown architecture {describe(name)} (this version knows: {', '.join(MODELS)})")
    kwargs = mapping(where, "architecture arguments", arch.get("kwargs") or {})
    try:
        return name, model_arguments(name, **{str(k): v for k, v in kwargs.items()})
    except ConfigError as exc:
        raise fail(where, f"architecture arguments out of range: {exc}") from None


def check_normalization(where: str, value: Any) -> tuple[float, float]:
    norm = mapping(where, "normalization", value)
    # the mean and spread of pixels in [0, 1]: a zero or NaN spread would turn every input into NaN
    mean = number(where, "normalization mean", norm.get("mean"), 0.0, 1.0)
    std = number(where, "normalization std", norm.get("std"), 1e-3, 1.0)
    return mean, std


def check_dataset(where: str, value: Any, num_classes: int) -> tuple[str, tuple[str, ...], str | None]:
    if value is None:
        value = {}
    dataset = mapping(where, "dataset", value)
    name = text(where, "dataset name", dataset.get("name", "mnist"))
    names = dataset.get("class_names")
    if names is None:
        if num_classes != 10:
            raise fail(where, f"names none of its model's {num_classes} classes")
        names = [str(i) for i in range(10)]
    names = sequence(where, "class names", names, num_classes)
    if len(names) != num_classes:
        raise fail(where, f"names {len(names)} classes but its model has {num_classes} outputs")
    for i, item in enumerate(names):
        text(where, f"class name {i}", item)
    folder = dataset.get("folder")
    folder = folder if isinstance(folder, str) and 0 < len(folder) <= 4096 else None
    return name, tuple(names), folder  # type: ignore[return-value]


def check_history(where: str, value: Any) -> dict[str, Any]:
    history = mapping(where, "history", value if value is not None else {})
    steps = sequence(where, "history steps", history.get("steps", []), MAX_HISTORY_POINTS)
    losses = sequence(where, "history losses", history.get("losses", []), MAX_HISTORY_POINTS)
    if len(steps) != len(losses):
        raise fail(where, f"history has {len(steps):,} steps but {len(losses):,} losses")
    # a loss can be huge but never NaN: training stops at the first non-finite one
    if not all(is_int(s) and 0 <= s <= MAX_INT for s in steps):
        raise fail(where, "history steps must be whole numbers")
    if not all(finite(v) for v in losses):
        raise fail(where, "history losses must be finite numbers")
    epochs = []
    for i, record in enumerate(sequence(where, "history epochs", history.get("epochs", []), MAX_EPOCHS)):
        record = mapping(where, f"history epoch {i + 1}", record)
        checked = {
            "epoch": whole(where, f"history epoch {i + 1}'s number", record.get("epoch"), 1, MAX_EPOCHS),
            "train_loss": number(where, f"history epoch {i + 1}'s train loss", record.get("train_loss", 0.0), 0),
            "test_loss": number(where, f"history epoch {i + 1}'s test loss", record.get("test_loss"), 0),
            "test_accuracy": number(where, f"history epoch {i + 1}'s accuracy", record.get("test_accuracy"), 0, 1),
            "seconds": number(where, f"history epoch {i + 1}'s seconds", record.get("seconds", 0.0), 0),
        }
        if "step" in record:
            checked["step"] = whole(where, f"history epoch {i + 1}'s step", record["step"])
        if record.get("train_accuracy") is not None:
            checked["train_accuracy"] = number(
                where, f"history epoch {i + 1}'s training accuracy", record["train_accuracy"], 0, 1
            )
        if record.get("lr") is not None:
            checked["lr"] = number(where, f"history epoch {i + 1}'s learning rate", record["lr"], 0)
        epochs.append(checked)
    return {"steps": [int(s) for s in steps], "losses": [float(v) for v in losses], "epochs": epochs}


def check_config(where: str, value: Any, architecture: str) -> dict[str, Any]:
    """The saved training configuration, type by type; TrainConfig.validate checks the ranges after."""
    config = mapping(where, "config", value if value is not None else {"model": architecture})
    types = {
        "model": str,
        "epochs": int,
        "batch_size": int,
        "optimizer": str,
        "lr": float,
        "momentum": float,
        "weight_decay": float,
        "schedule": str,
        "augment": bool,
        "seed": int,
        "device": str,
        "detect_anomaly": bool,
        "log_every": int,
    }
    checked: dict[str, Any] = {}
    for key, kind in types.items():
        if key not in config:
            continue
        item = config[key]
        ok = (
            isinstance(item, bool)
            if kind is bool
            else is_int(item)
            if kind is int
            else finite(item)
            if kind is float
            else isinstance(item, str) and len(item) <= 100
        )
        if not ok:
            raise fail(where, f"config {key} must be {kind.__name__}, got {describe(item)}")
        checked[key] = item
    if checked.get("model", architecture) != architecture:
        raise fail(where, f"config names model {describe(checked['model'])} but the weights are {architecture}'s")
    return checked


def check_scheduler_state(where: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    state = mapping(where, "scheduler state", value)
    return {
        "step": whole(where, "scheduler step", state.get("step", 0)),
        "total_steps": whole(where, "scheduler total steps", state.get("total_steps", 0)),
        "schedule": text(where, "schedule", state.get("schedule", "none")),
    }


def check_taught(where: str, value: Any) -> dict[str, Any] | None:
    """What engine.teaching records of a taught model; None for any other."""
    if value is None:
        return None
    taught = mapping(where, "teaching record", value)
    checked: dict[str, Any] = {
        "samples": whole(where, "taught samples", taught.get("samples", 0)),
        "steps": whole(where, "teaching steps", taught.get("steps", 0)),
        "base": text(where, "base model", taught.get("base", "")),
        "held_out": whole(where, "held-out samples", taught.get("held_out", 0)),
    }
    for key in ("base_accuracy", "taught_accuracy"):
        item = taught.get(key)
        checked[key] = None if item is None else number(where, key.replace("_", " "), item, 0, 1)
    return checked


# ------------------------------------------------------------------------------------------------ tensors


def check_tensor(where: str, field: str, value: Any, like: torch.Tensor | None = None) -> torch.Tensor:
    """A dense, finite tensor; with ``like``: of its shape and kind of dtype (floating or integer)."""
    if not isinstance(value, torch.Tensor):
        raise fail(where, f"{field} must be a tensor, got {describe(value)}")
    if value.layout != torch.strided or value.is_quantized or value.is_complex() or value.dtype == torch.bool:
        raise fail(where, f"{field} is a {value.layout} {value.dtype} tensor, not dense real numbers")
    if like is not None:
        if value.shape != like.shape:
            raise fail(where, f"{field} has shape {tuple(value.shape)} where the model needs {tuple(like.shape)}")
        if value.is_floating_point() != like.is_floating_point():
            raise fail(where, f"{field} holds {value.dtype} where the model needs {like.dtype}")
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise fail(where, f"{field} holds NaN or infinite values")
    return value


def check_model_state(where: str, architecture: str, model: nn.Module, state: Any) -> dict[str, torch.Tensor]:
    state = mapping(where, "model weights", state)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [str(k) for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if isinstance(state.get(k), torch.Tensor) and state[k].shape != v.shape
    ]
    problems = []
    for label, items in (
        ("shapes do not match", wrong),
        ("missing weights", missing),
        ("unexpected weights", unexpected),
    ):
        if items:
            problems.append(f"{label}: {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}")
    if problems:
        raise fail(where, f"weights do not fit architecture '{architecture}': " + "; ".join(problems))
    for key, like in expected.items():
        check_tensor(where, f"weight {key}", state[key], like)
        if key.endswith("running_var") and bool((state[key] < 0).any()):
            raise fail(where, f"weight {key} holds negative variances")
        if key.endswith("num_batches_tracked") and not 0 <= int(state[key].reshape(-1)[0]) <= MAX_INT:
            raise fail(where, f"weight {key} is out of range")
    return {k: state[k] for k in expected}


_STATE_KEYS = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer", "step"}
_NON_NEGATIVE = {"exp_avg_sq", "max_exp_avg_sq"}
# Optimiser options that change what a step reads (amsgrad: one more moment) or its sign; never set here.
_MUST_BE_OFF = ("amsgrad", "maximize")


def _plain_option(value: Any) -> bool:
    if value is None or isinstance(value, bool) or finite(value):
        return True
    if isinstance(value, str):
        return len(value) <= 100
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and value.layout == torch.strided
    if isinstance(value, (list, tuple)):
        return len(value) <= 4 and all(finite(item) for item in value)
    return False


def check_optimizer_state(where: str, state: Any, parameters: Iterable[torch.Tensor]) -> dict[str, Any]:
    """An optimiser state dict whose every tensor fits the parameter it belongs to.

    PyTorch's fused Adam kernel trusts the moments to have their parameter's element count: a smaller one
    ends the process with a segmentation fault, a larger one trains on garbage.
    """
    params = list(parameters)
    state = mapping(where, "optimizer state", state)
    groups = sequence(where, "optimizer parameter groups", state.get("param_groups"), 100)
    per_param = mapping(where, "optimizer state", state.get("state", {}))
    seen: list[int] = []
    for g, group in enumerate(groups):
        group = mapping(where, f"optimizer group {g}", group)
        ids = sequence(where, f"optimizer group {g}'s parameters", group.get("params"), len(params))
        seen += [whole(where, f"optimizer group {g}'s parameter", i, 0, len(params) - 1) for i in ids]
        number(
            where,
            "optimizer learning rate",
            float(group["lr"])
            if isinstance(group.get("lr"), torch.Tensor) and group["lr"].numel() == 1
            else group.get("lr"),
            0,
        )
        number(where, "optimizer weight decay", group.get("weight_decay", 0.0), 0)
        if "betas" in group:
            betas = sequence(where, "optimizer betas", group["betas"], 2)
            if len(betas) != 2:
                raise fail(where, "optimizer betas must be two numbers")
            for beta in betas:
                number(where, "optimizer beta", beta, 0, 1)
        if "eps" in group:
            number(where, "optimizer eps", group["eps"], 0)
        for key in ("momentum", "dampening"):
            if key in group:
                number(where, f"optimizer {key}", group[key], 0, 1)
        for key, value in group.items():  # options are plain values; anything else is not an optimiser's
            if key != "params" and not _plain_option(value):
                raise fail(where, f"optimizer option {describe(key)} is {describe(value)}, not a plain value")
        for key in _MUST_BE_OFF:
            if group.get(key):
                raise fail(where, f"optimizer option {key} is on, which Digit Studio never uses")
    if sorted(seen) != list(range(len(params))):
        raise fail(where, f"optimizer state covers {len(seen)} parameters, the model has {len(params)}")
    for key, entry in per_param.items():
        if not is_int(key) or not 0 <= key < len(params):
            raise fail(where, f"optimizer state for unknown parameter {describe(key)}")
        entry = mapping(where, f"optimizer state of parameter {key}", entry)
        for name, value in entry.items():
            field = f"optimizer state {name} of parameter {key}"
            if name not in _STATE_KEYS:
                raise fail(where, f"unknown {field}")
            if name == "step":
                if isinstance(value, torch.Tensor):
                    check_tensor(where, field, value)
                    if value.numel() != 1:
                        raise fail(where, f"{field} must be one number, has {value.numel()}")
                    value = value.reshape(()).item()
                number(where, field, value, 0, MAX_INT)
            elif name == "momentum_buffer" and value is None:
                continue
            else:
                check_tensor(where, field, value, params[key])
                if name in _NON_NEGATIVE and bool((value < 0).any()):
                    raise fail(where, f"{field} holds negative values")
    return state
