"""Checkpoints: one ``.pt`` file of tensors and plain values, saved atomically, loaded safely.

Loading uses ``torch.load(weights_only=True)`` and nothing else: a pickle that tries to build arbitrary
objects (and so run code) is refused, never retried with ``weights_only=False``. Everything read is
validated, and the model is rebuilt from the registry and loaded with ``strict=True`` before the caller
sees it, so a bad file raises :class:`CheckpointError` and cannot replace a model already in use.

Format (``format_version`` 1), one dict::

    format             "digit-studio-checkpoint"
    format_version     1
    architecture       {"name": str, "kwargs": dict}
    model_state        state_dict (tensors)
    optimizer_state    optimizer state_dict, or None
    scheduler_state    {"step": int, "total_steps": int, "schedule": str}, or None
    config             TrainConfig as a dict
    history            {"steps": [int], "losses": [float], "epochs": [{epoch, step, train_loss, test_loss,
                        test_accuracy, seconds}]} (``step``: the global step the epoch ended at; older
                        files lack it)
    normalization      {"mean": float, "std": float}
    dataset            {"name": str, "class_names": [str], "folder": str or None} (``folder``: where the
                        training data was loaded from, so evaluating or resuming on that computer finds it
                        without being told; older files lack it)
    epochs_done        int
    torch_version      str
    app_version        str
    created            ISO 8601 time (UTC)
    command            the command line that produced it, or None
"""

from __future__ import annotations

import datetime as _dt
import io
import pickle
import pickletools
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine import __version__
from engine.data import Normalization, has_split_files
from engine.errors import CheckpointError
from engine.files import atomic_write
from engine.models import MODELS, build_model
from engine.training import History, TrainConfig

FORMAT = "digit-studio-checkpoint"
FORMAT_VERSION = 1
_REQUIRED = ("architecture", "model_state", "normalization", "epochs_done")


@dataclass
class Checkpoint:
    """A validated checkpoint: the rebuilt model (on the CPU, eval mode) and its metadata."""

    path: Path | None
    model: nn.Module
    architecture: str
    model_kwargs: dict[str, Any]
    config: TrainConfig
    history: History
    normalization: Normalization
    dataset_name: str
    class_names: tuple[str, ...]
    epochs_done: int
    optimizer_state: dict[str, Any] | None
    scheduler_state: dict[str, Any] | None
    torch_version: str
    app_version: str
    created: str
    command: str | None
    dataset_folder: str | None = None

    @property
    def display_name(self) -> str:
        return self.path.name if self.path else self.architecture

    def data_folder(self) -> Path | None:
        """The folder the model's training data came from, while it still holds the data set's files."""
        if not self.dataset_folder:
            return None
        folder = Path(self.dataset_folder)
        try:
            return folder if folder.is_dir() and has_split_files(folder) else None
        except OSError:  # unreadable now (permissions, a dead network mount)
            return None


def build_payload(
    *,
    architecture: str,
    model_kwargs: dict[str, Any],
    model_state: dict[str, torch.Tensor],
    config: TrainConfig,
    history: History | dict[str, Any],
    normalization: Normalization,
    dataset_name: str,
    class_names: tuple[str, ...] | list[str],
    epochs_done: int,
    optimizer_state: dict[str, Any] | None = None,
    scheduler_state: dict[str, Any] | None = None,
    command: str | None = None,
    dataset_folder: str | None = None,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": {"name": architecture, "kwargs": dict(model_kwargs)},
        "model_state": {k: v.detach().cpu() for k, v in model_state.items()},
        "optimizer_state": optimizer_state,
        "scheduler_state": scheduler_state,
        "config": config.to_dict(),
        "history": history.to_dict() if isinstance(history, History) else history,
        "normalization": normalization.to_dict(),
        "dataset": {"name": dataset_name, "class_names": list(class_names), "folder": dataset_folder},
        "epochs_done": int(epochs_done),
        "torch_version": str(torch.__version__),
        "app_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
    }


def trainer_payload(trainer: Any, command: str | None = None, slim: bool = False) -> dict[str, Any]:
    """The payload for a :class:`engine.training.Trainer`'s last completed epoch.

    ``slim`` leaves out the optimiser state (two thirds of an Adam checkpoint) and the data folder (a path
    on this computer): for models that are shipped rather than resumed. Resuming a slim checkpoint starts
    a fresh optimiser.
    """
    state = trainer.state()
    return build_payload(
        architecture=trainer.config.model,
        model_kwargs=trainer.model_kwargs,
        model_state=state["model_state"],
        config=trainer.config,
        history=state["history"],
        normalization=trainer.normalization,
        dataset_name=trainer.dataset.name,
        class_names=trainer.dataset.class_names,
        epochs_done=state["epochs_done"],
        optimizer_state=None if slim else state["optimizer_state"],
        scheduler_state=state["scheduler_state"],
        command=command,
        dataset_folder=None if slim else str(Path(trainer.dataset.folder).resolve()),
    )


def checkpoint_payload(checkpoint: Checkpoint) -> dict[str, Any]:
    """The payload to write a loaded checkpoint back out (e.g. Save as)."""
    return build_payload(
        architecture=checkpoint.architecture,
        model_kwargs=checkpoint.model_kwargs,
        model_state=checkpoint.model.state_dict(),
        config=checkpoint.config,
        history=checkpoint.history,
        normalization=checkpoint.normalization,
        dataset_name=checkpoint.dataset_name,
        class_names=checkpoint.class_names,
        epochs_done=checkpoint.epochs_done,
        optimizer_state=checkpoint.optimizer_state,
        scheduler_state=checkpoint.scheduler_state,
        command=checkpoint.command,
        dataset_folder=checkpoint.dataset_folder,
    )


def save(payload: dict[str, Any], path: Path | str) -> Path:
    """Write ``payload`` to ``path`` atomically (see :mod:`engine.files`)."""
    path = Path(path).expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CheckpointError(f"cannot save {path}: folder {folder} does not exist")
    buffer = io.BytesIO()
    torch.save(payload, buffer)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(buffer.getbuffer())

    try:
        return atomic_write(path, write)
    except OSError as exc:
        raise CheckpointError(f"cannot save {path}: {exc.strerror or exc}") from exc


# The registry's models are small (digitnet 136k parameters, lenet 44k): a checkpoint with optimiser state
# is under 2 MB. A file hundreds of times larger is something else, and reading it would take seconds.
MAX_CHECKPOINT_BYTES = 256 * 2**20


def _read(path: Path) -> Any:
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: the file is empty, not a checkpoint")
    if size > MAX_CHECKPOINT_BYTES:  # read whole before it could be refused: the window would freeze meanwhile
        raise CheckpointError(f"{path}: {size / 2**20:,.0f} MB, far larger than any Digit Studio checkpoint "
                              f"(the largest model's is about 2 MB): not a checkpoint")
    with path.open("rb") as handle:
        head = handle.read(4)
    is_zip = head == b"PK\x03\x04"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the safe unpickler warns about pickle protocols; errors say enough
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the unpickler raises many types on garbage; all mean the same to a user
        unpickling = isinstance(exc, pickle.UnpicklingError)
        if unpickling and ("Unsupported global" in str(exc) or "GLOBAL " in str(exc)
                           or (not is_zip and _imports_code(path))):
            raise CheckpointError(
                f"{path}: refused: the file asks to build Python objects other than tensors and plain values "
                "(an unsafe pickle that could run code); it was not loaded"
            ) from None
        if is_zip:
            program = _exported_program_kind(path)
            if program is not None:
                raise CheckpointError(
                    f"{path}: a {program} exported for other programs to run, not a checkpoint; open the "
                    "checkpoint it was exported from"
                ) from None
            raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({_short(exc)})") from None
        detail = " (unreadable pickle data)" if unpickling else ""
        raise CheckpointError(f"{path}: not a checkpoint file{detail}") from None


def _exported_program_kind(path: Path) -> str | None:
    """"TorchScript program" or "torch.export program" for the archives File > Export writes, by their
    member names (a TorchScript export may well be called ``.pt``, like a checkpoint); None otherwise."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    if any(name.endswith("/constants.pkl") or "/code/" in name for name in names):
        return "TorchScript program"
    if any(name.endswith("/archive_format") or name.endswith("/models/model.json") for name in names):
        return "torch.export program"
    return None


_CODE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX"}


def _imports_code(path: Path) -> bool:
    """Whether a file is a well-formed pickle that asks to import or call something.

    Only parses opcodes (``pickletools.genops``) and runs nothing. Random bytes can look like a GLOBAL
    opcode for a moment, so the whole stream must parse before the verdict counts.
    """
    try:
        with path.open("rb") as handle:
            names = {op.name for op, _, _ in pickletools.genops(handle)}
    except Exception:  # not a parseable pickle at all
        return False
    return bool(names & _CODE_OPCODES)


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__


def load(path: Path | str) -> Checkpoint:
    """Load and validate a checkpoint; every failure is a :class:`CheckpointError` naming the problem."""
    path = Path(path).expanduser()
    data = _read(path)
    return from_payload(data, path)


def from_payload(data: Any, path: Path | None = None) -> Checkpoint:
    where = str(path) if path else "checkpoint"
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{where}: not a Digit Studio checkpoint (a PyTorch file of another kind)")
    version = data.get("format_version")
    if not isinstance(version, int):
        raise CheckpointError(f"{where}: has no valid format version")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{where}: written by a newer Digit Studio (checkpoint format {version}; this version reads up "
            f"to {FORMAT_VERSION}); update the app to open it"
        )
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise CheckpointError(f"{where}: incomplete checkpoint, missing {', '.join(missing)}")
    arch = data["architecture"]
    name = arch.get("name") if isinstance(arch, dict) else None
    if name not in MODELS:
        raise CheckpointError(
            f"{where}: unknown architecture '{name}' (this version knows: {', '.join(MODELS)})"
        )
    kwargs = dict(arch.get("kwargs") or {})
    try:
        model = build_model(name, **kwargs)
    except Exception as exc:
        raise CheckpointError(f"{where}: architecture '{name}' cannot be built with {kwargs}: {exc}") from None
    state = data["model_state"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{where}: model weights are missing or not tensors")
    _check_state(where, name, model, state)
    model.load_state_dict(state, strict=True)
    model.eval()
    norm = data["normalization"]
    dataset = data.get("dataset") or {}
    try:
        normalization = Normalization(float(norm["mean"]), float(norm["std"]))
        config = TrainConfig.from_dict(data.get("config") or {"model": name})
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: malformed metadata ({exc})") from None
    return Checkpoint(
        path=path,
        model=model,
        architecture=name,
        model_kwargs=kwargs,
        config=config,
        history=History.from_dict(data.get("history") or {}),
        normalization=normalization,
        dataset_name=str(dataset.get("name", "mnist")),
        class_names=tuple(dataset.get("class_names") or [str(i) for i in range(10)]),
        epochs_done=int(data["epochs_done"]),
        optimizer_state=data.get("optimizer_state"),
        scheduler_state=data.get("scheduler_state"),
        torch_version=str(data.get("torch_version", "")),
        app_version=str(data.get("app_version", "")),
        created=str(data.get("created", "")),
        command=data.get("command"),
        dataset_folder=dataset.get("folder") if isinstance(dataset.get("folder"), str) else None,
    )


def _check_state(where: str, name: str, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if wrong:
        problems.append("shapes do not match: " + ", ".join(wrong[:3]) + (" ..." if len(wrong) > 3 else ""))
    if missing:
        problems.append("missing weights: " + ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else ""))
    if unexpected:
        problems.append("unexpected weights: " + ", ".join(unexpected[:3]) + (" ..." if len(unexpected) > 3 else ""))
    if problems:
        raise CheckpointError(f"{where}: weights do not fit architecture '{name}': " + "; ".join(problems))


def resume_trainer(
    checkpoint: Checkpoint,
    dataset: Any,
    *,
    more_epochs: int | None = None,
    device: str | None = None,
) -> Any:
    """A :class:`engine.training.Trainer` that continues ``checkpoint``: same weights, optimiser, history.

    Without ``more_epochs`` it finishes the run the checkpoint planned (``config.epochs``); with it, it
    trains that many epochs beyond those done.
    """
    from dataclasses import replace

    from engine.data import check_classes
    from engine.training import Trainer

    check_classes(dataset, checkpoint.class_names, checkpoint.display_name)
    config = checkpoint.config
    if device is not None:
        config = replace(config, device=device)
    if more_epochs is not None:
        config = replace(config, epochs=checkpoint.epochs_done + more_epochs)
    if config.epochs <= checkpoint.epochs_done:
        raise CheckpointError(
            f"{checkpoint.display_name} has already trained {checkpoint.epochs_done} of its "
            f"{checkpoint.config.epochs} planned epochs; ask for more epochs to continue"
        )
    return Trainer(
        config,
        dataset,
        model_state=checkpoint.model.state_dict(),
        optimizer_state=checkpoint.optimizer_state,
        history=History.from_dict(checkpoint.history.to_dict()),
        epochs_done=checkpoint.epochs_done,
        model_kwargs=checkpoint.model_kwargs,
        normalization=checkpoint.normalization,
    )
