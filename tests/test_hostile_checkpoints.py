"""Crafted checkpoints: each is refused with a CheckpointError naming the problem, quickly, before any model
is trained or used with it, and never crashes the process (the fused Adam kernel trusts its moments' sizes)."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from engine import checkpoint as ckpt
from engine.checkpoint_validation import MAX_TENSOR_BYTES
from engine.config import TrainConfig
from engine.errors import CheckpointError, ConfigError
from engine.training import Trainer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def payload(tiny_dataset) -> dict[str, Any]:
    """A real checkpoint's payload (LeNet, one epoch, AdamW state)."""
    trainer = Trainer(TrainConfig.for_model("lenet", epochs=1, device="cpu", batch_size=64), tiny_dataset)
    trainer.run()
    return ckpt.trainer_payload(trainer)


def crafted(payload: dict[str, Any], change: Callable[[dict[str, Any]], None], path: Path) -> Path:
    data = torch.load(io.BytesIO(_bytes(payload)), weights_only=True)  # a deep copy
    change(data)
    torch.save(data, path)
    return path


def _bytes(payload: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _moment(data: dict[str, Any], name: str = "exp_avg", param: int = 0) -> torch.Tensor:
    return data["optimizer_state"]["state"][param][name]


def _set_moment(data: dict[str, Any], value: Any, name: str = "exp_avg", param: int = 0) -> None:
    data["optimizer_state"]["state"][param][name] = value


def _set(*keys: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


CASES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "moment with fewer elements": (lambda d: _set_moment(d, _moment(d).flatten()[:10]), "exp_avg of parameter 0"),
    "moment with more elements": (lambda d: _set_moment(d, torch.zeros(1000, 25)), "has shape (1000, 25)"),
    "moment reshaped": (lambda d: _set_moment(d, _moment(d).reshape(-1)), "exp_avg of parameter 0"),
    "moment with NaN": (lambda d: _moment(d).view(-1).__setitem__(0, math.nan), "NaN or infinite"),
    "negative second moment": (lambda d: _moment(d, "exp_avg_sq").fill_(-1), "negative values"),
    "moment of another dtype kind": (
        lambda d: _set_moment(d, torch.zeros_like(_moment(d), dtype=torch.int64)),
        "holds torch.int64",
    ),
    "moment not a tensor": (lambda d: _set_moment(d, "zeros"), "must be a tensor"),
    "sparse moment": (lambda d: _set_moment(d, _moment(d).to_sparse()), "not dense"),
    "step of two numbers": (lambda d: _set_moment(d, torch.ones(2), "step"), "must be one number"),
    "state of an unknown parameter": (lambda d: d["optimizer_state"]["state"].__setitem__(99, {}), "unknown parameter"),
    "unknown state entry": (lambda d: _set_moment(d, torch.zeros(1), "secret"), "unknown optimizer state"),
    "group missing a parameter": (lambda d: d["optimizer_state"]["param_groups"][0]["params"].pop(), "covers"),
    "amsgrad turned on": (lambda d: d["optimizer_state"]["param_groups"][0].__setitem__("amsgrad", True), "amsgrad"),
    "infinite learning rate": (
        lambda d: d["optimizer_state"]["param_groups"][0].__setitem__("lr", math.inf),
        "learning rate",
    ),
    "nested optimizer option": (
        lambda d: d["optimizer_state"]["param_groups"][0].__setitem__("x", [[[1]]]),
        "not a plain value",
    ),
    "optimizer state not a dict": (_set("optimizer_state", value=[1, 2]), "must be a dictionary"),
    "NaN weight": (lambda d: d["model_state"]["conv1.weight"].view(-1).__setitem__(3, math.nan), "NaN or infinite"),
    "infinite weight": (lambda d: d["model_state"]["fc3.bias"].fill_(math.inf), "NaN or infinite"),
    "weights that overflow": (lambda d: d["model_state"]["fc1.weight"].fill_(3e38), "NaN or infinite outputs"),
    "sparse weight": (
        lambda d: d["model_state"].__setitem__("fc3.bias", d["model_state"]["fc3.bias"].to_sparse()),
        "not dense",
    ),
    "integer weight": (
        lambda d: d["model_state"].__setitem__("fc3.bias", torch.zeros(10, dtype=torch.int32)),
        "holds torch.int32",
    ),
    "weight not a tensor": (lambda d: d["model_state"].__setitem__("fc3.bias", [0.0] * 10), "must be a tensor"),
    "weights not a dict": (_set("model_state", value="weights"), "must be a dictionary"),
    "huge width": (_set("architecture", "kwargs", value={"width": 2500}), "width"),
    "width as text": (_set("architecture", value={"name": "digitnet", "kwargs": {"width": "16"}}), "whole number"),
    "unknown architecture argument": (_set("architecture", "kwargs", value={"depth": 3}), "no argument depth"),
    "a million classes": (_set("architecture", "kwargs", value={"num_classes": 10**6}), "num_classes"),
    "architecture not a dict": (_set("architecture", value="lenet"), "must be a dictionary"),
    "class names too few": (_set("dataset", "class_names", value=["0", "1"]), "names 2 classes"),
    "class names not text": (_set("dataset", "class_names", value=list(range(10))), "class name 0 must be text"),
    "dataset not a dict": (_set("dataset", value="mnist"), "dataset must be a dictionary"),
    "history not a dict": (_set("history", value=5), "history must be a dictionary"),
    "history with NaN loss": (lambda d: d["history"]["losses"].__setitem__(0, math.nan), "finite"),
    "history steps not numbers": (lambda d: d["history"]["steps"].__setitem__(0, "x"), "whole numbers"),
    "history of unequal length": (lambda d: d["history"]["losses"].append(1.0), "losses"),
    "history epoch accuracy out of range": (
        lambda d: d["history"]["epochs"][0].__setitem__("test_accuracy", 7.0),
        "accuracy",
    ),
    "too long a history": (
        _set("history", value={"steps": [1] * 250_001, "losses": [1.0] * 250_001}),
        "more than the 250,000",
    ),
    "config not a dict": (_set("config", value=[]), "config must be a dictionary"),
    "config with a text epoch count": (_set("config", "epochs", value="3"), "config epochs"),
    "config seed beyond 64 bits": (_set("config", "seed", value=2**70), "seed"),
    "config of another model": (_set("config", "model", value="digitnet"), "weights are lenet's"),
    "epochs done beyond 64 bits": (_set("epochs_done", value=2**70), "epochs done"),
    "negative epochs done": (_set("epochs_done", value=-1), "epochs done"),
    "zero std": (_set("normalization", value={"mean": 0.1, "std": 0.0}), "normalization std"),
    "NaN std": (_set("normalization", value={"mean": 0.1, "std": math.nan}), "normalization std"),
    "text mean": (_set("normalization", value={"mean": "0.1", "std": 0.3}), "normalization mean"),
    "scheduler state not a dict": (_set("scheduler_state", value=3), "scheduler state"),
    "command not text": (_set("command", value=12), "command must be text"),
    "format version not a number": (_set("format_version", value="1"), "format version"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_crafted_checkpoint_is_refused_with_its_problem(payload, tmp_path: Path, case: str) -> None:
    change, needle = CASES[case]
    path = crafted(payload, change, tmp_path / "crafted.pt")
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as error:
        ckpt.load(path)
    assert time.perf_counter() - start < 10
    message = str(error.value)
    assert message.startswith(str(path)) and needle in message and "\n" not in message


def test_the_untouched_payload_loads(payload, tmp_path: Path) -> None:
    loaded = ckpt.load(crafted(payload, lambda d: None, tmp_path / "fine.pt"))
    assert loaded.architecture == "lenet" and loaded.epochs_done == 1


def test_a_bad_optimizer_state_is_refused_by_the_trainer_too(payload, tiny_dataset) -> None:
    """The trainer checks a state handed to it directly (not through a file) before any step."""
    loaded = ckpt.from_payload(torch.load(io.BytesIO(_bytes(payload)), weights_only=True))
    state = torch.load(io.BytesIO(_bytes(payload)), weights_only=True)["optimizer_state"]
    state["state"][0]["exp_avg"] = state["state"][0]["exp_avg"].flatten()[:10]
    with pytest.raises(ConfigError, match="saved optimiser state does not fit"):
        Trainer(loaded.config, tiny_dataset, model_state=loaded.model.state_dict(), optimizer_state=state)


def test_resuming_a_checkpoint_with_short_moments_exits_2_and_does_not_crash(
    payload, tiny_data: Path, tmp_path: Path
) -> None:
    path = crafted(payload, CASES["moment with fewer elements"][0], tmp_path / "short.pt")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "main.py"),
            "train",
            "--resume",
            str(path),
            "--epochs",
            "1",
            "--data",
            str(tiny_data),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "exp_avg of parameter 0" in result.stderr


def _rezip(source: bytes, replace: dict[str, bytes | int], path: Path) -> Path:
    """``source``'s archive with members replaced: by bytes, or by that many zero bytes (deflated)."""
    with zipfile.ZipFile(io.BytesIO(source)) as old, zipfile.ZipFile(path, "w") as new:
        for info in old.infolist():
            name = info.filename
            key = next((k for k in replace if name.endswith(k)), None)
            if key is None:
                new.writestr(info, old.read(name))
            elif isinstance(replace[key], int):
                member = zipfile.ZipInfo(name)
                member.compress_type = zipfile.ZIP_DEFLATED
                with new.open(member, "w", force_zip64=True) as out:
                    block = bytes(1 << 20)
                    for _ in range(replace[key] >> 20):
                        out.write(block)
            else:
                new.writestr(info, replace[key])
    return path


def test_a_zip_bomb_is_refused_from_its_directory_alone(
    payload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member that would inflate past what a checkpoint can hold is refused before PyTorch reads it."""
    with zipfile.ZipFile(io.BytesIO(_bytes(payload))) as old:
        tensor = next(n for n in old.namelist() if "/data/" in n)
    path = _rezip(_bytes(payload), {tensor: MAX_TENSOR_BYTES + (1 << 20)}, tmp_path / "bomb.pt")
    assert path.stat().st_size < 2 * 2**20
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("inflated a zip bomb"))
    with pytest.raises(CheckpointError, match="would unpack to .* MB"):
        ckpt.load(path)


def test_a_huge_width_is_refused_without_building_the_model(
    payload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.models

    path = crafted(
        payload, _set("architecture", value={"name": "digitnet", "kwargs": {"width": 2500}}), tmp_path / "wide.pt"
    )
    monkeypatch.setattr(engine.models.DigitNet, "__init__", lambda *a, **k: pytest.fail("built the model"))
    with pytest.raises(CheckpointError, match="width must be in 1..64, got 2500"):
        ckpt.load(path)


def test_a_pickle_outside_a_zip_is_never_unpickled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every checkpoint is a zip archive; an old-style raw torch.save file is not read at all."""
    path = tmp_path / "legacy.pt"
    torch.save({"format": ckpt.FORMAT}, path, _use_new_zipfile_serialization=False)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("unpickled a file that is no zip"))
    with pytest.raises(CheckpointError, match="not a checkpoint file"):
        ckpt.load(path)


def test_special_files_and_long_names_are_refused(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match="not a regular file"):
        ckpt.load(fifo)  # would block forever if opened
    with pytest.raises(CheckpointError, match="cannot be read"):
        ckpt.load(tmp_path / ("m" * 300 + ".pt"))


def test_evaluate_json_is_strict(payload, tiny_data: Path, tmp_path: Path, capsys) -> None:
    from engine.cli import main

    path = crafted(payload, lambda d: None, tmp_path / "fine.pt")
    assert main(["evaluate", "--checkpoint", str(path), "--data", str(tiny_data), "--json"]) == 0
    text = capsys.readouterr().out

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-strict JSON constant {constant}")

    json.loads(text, parse_constant=refuse)


def test_a_zip_listing_too_many_entries_is_refused_from_its_end_record(tmp_path: Path) -> None:
    path = tmp_path / "many.pt"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(10_001):
            archive.writestr(f"many/{i}", b"")
    with pytest.raises(CheckpointError, match="lists 10,001 entries"):
        ckpt.load(path)
