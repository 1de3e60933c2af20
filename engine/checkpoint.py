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
    taught             for a model taught a user's handwriting (engine.teaching): {"samples", "steps",
                       "base", "held_out", "base_accuracy", "taught_accuracy"}; absent otherwise
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
from engine.checkpoint_validation import (
    check_architecture,
    check_archive,
    check_config,
    check_dataset,
    check_history,
    check_model_state,
    check_normalization,
    check_optimizer_state,
    check_scheduler_state,
    check_taught,
    is_int,
    text,
    whole,
)
from engine.config import MAX_EPOCHS, TrainConfig
from engine.data import Normalization, has_split_files
from engine.errors import CheckpointError, ConfigError
from engine.files import atomic_write, check_input, folder_problem
from engine.history import History
from engine.models import build_model

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
    taught: dict[str, Any] | None = None

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
    taught: dict[str, Any] | None = None,
) -> dict[str, Any]:
    payload = {
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
    if taught is not None:
        payload["taught"] = dict(taught)
    return payload


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
        taught=checkpoint.taught,
    )


def save(payload: dict[str, Any], path: Path | str) -> Path:
    """Write ``payload`` to ``path`` atomically (see :mod:`engine.files`)."""
    path = Path(path).expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    problem = folder_problem(folder)
    if problem is not None:
        raise CheckpointError(f"cannot save {path}: folder {folder} {problem}")
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
# is under 2 MB, and under 30 MB for the widest model the registry allows. A file far larger is something
# else, and reading it would take seconds.
MAX_CHECKPOINT_BYTES = 64 * 2**20
UNSAFE_PICKLE = (
    "refused: the file asks to build Python objects other than tensors and plain values "
    "(an unsafe pickle that could run code); it was not loaded"
)


def _read(path: Path) -> Any:
    """The checkpoint's payload, read with the safe unpickler once the file's size and form allow it."""
    info = check_input(path, "a checkpoint", CheckpointError)
    if info.st_size > MAX_CHECKPOINT_BYTES:  # refused before it is read: the window would freeze meanwhile
        raise CheckpointError(
            f"{path}: {info.st_size / 2**20:,.0f} MB, far larger than any Digit Studio "
            "checkpoint (the largest model's is about 30 MB): not a checkpoint"
        )
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if head != b"PK\x03\x04":  # every checkpoint is a zip archive (torch.save's format since PyTorch 1.6)
        if _imports_code(path):
            raise CheckpointError(f"{path}: {UNSAFE_PICKLE}")
        raise CheckpointError(f"{path}: not a checkpoint file")
    program = _exported_program_kind(path)
    if program is not None:
        raise CheckpointError(
            f"{path}: a {program} exported for other programs to run, not a checkpoint; "
            "open the checkpoint it was exported from"
        )
    check_archive(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the safe unpickler warns about pickle protocols; errors say enough
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the unpickler raises many types on garbage; all mean the same to a user
        if isinstance(exc, pickle.UnpicklingError) and ("Unsupported global" in str(exc) or "GLOBAL " in str(exc)):
            raise CheckpointError(f"{path}: {UNSAFE_PICKLE}") from None
        raise CheckpointError(
            f"{path}: corrupt or truncated checkpoint file (PyTorch cannot read what it holds)"
        ) from None


def _exported_program_kind(path: Path) -> str | None:
    """ "TorchScript program" or "torch.export program" for the archives File > Export writes, by their
    member names (a TorchScript export may well be called ``.pt``, like a checkpoint); None otherwise."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, NotImplementedError):
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


def load(path: Path | str) -> Checkpoint:
    """Load and validate a checkpoint; every failure is a :class:`CheckpointError` naming the problem."""
    path = Path(path).expanduser()
    data = _read(path)
    return from_payload(data, path)


def from_payload(data: Any, path: Path | None = None) -> Checkpoint:
    """A :class:`Checkpoint` from a payload whose every field and tensor is checked first
    (:mod:`engine.checkpoint_validation`)."""
    where = str(path) if path else "checkpoint"
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{where}: not a Digit Studio checkpoint (a PyTorch file of another kind)")
    version = data.get("format_version")
    if not isinstance(version, int) or not is_int(version) or version < 1:
        raise CheckpointError(f"{where}: has no valid format version")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{where}: written by a newer Digit Studio (checkpoint format {version}; this version reads up "
            f"to {FORMAT_VERSION}); update the app to open it"
        )
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise CheckpointError(f"{where}: incomplete checkpoint, missing {', '.join(missing)}")
    name, kwargs = check_architecture(where, data["architecture"])
    model = build_model(name, **kwargs)
    model.load_state_dict(check_model_state(where, name, model, data["model_state"]), strict=True)
    model.eval()
    normalization = Normalization(*check_normalization(where, data["normalization"]))
    dataset_name, class_names, folder = check_dataset(where, data.get("dataset"), kwargs["num_classes"])
    try:
        config = TrainConfig.from_dict(check_config(where, data.get("config"), name)).validate()
    except ConfigError as exc:
        raise CheckpointError(f"{where}: its training settings are invalid: {exc}") from None
    optimizer_state = data.get("optimizer_state")
    if optimizer_state is not None:
        check_optimizer_state(where, optimizer_state, model.parameters())
    _check_outputs(where, model, normalization)
    return Checkpoint(
        path=path,
        model=model,
        architecture=name,
        model_kwargs=kwargs,
        config=config,
        history=History.from_dict(check_history(where, data.get("history"))),
        normalization=normalization,
        dataset_name=dataset_name,
        class_names=class_names,
        epochs_done=whole(where, "epochs done", data["epochs_done"], 0, MAX_EPOCHS),
        optimizer_state=optimizer_state,
        scheduler_state=check_scheduler_state(where, data.get("scheduler_state")),
        torch_version=text(where, "torch version", data.get("torch_version", "")) or "",
        app_version=text(where, "app version", data.get("app_version", "")) or "",
        created=text(where, "creation time", data.get("created", "")) or "",
        command=text(where, "command", data.get("command"), optional=True),
        dataset_folder=folder,
        taught=check_taught(where, data.get("taught")),
    )


@torch.inference_mode()
def _check_outputs(where: str, model: nn.Module, normalization: Normalization) -> None:
    """Finite weights can still overflow (1e38 times a pixel): a blank and a noisy image must give finite
    logits, or every prediction would be NaN."""
    probe = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    probe[0].zero_()
    logits = model((probe - normalization.mean) / normalization.std)
    if not bool(torch.isfinite(logits).all()):
        raise CheckpointError(f"{where}: its weights give NaN or infinite outputs, so it cannot recognise anything")


def resume_trainer(
    checkpoint: Checkpoint,
    dataset: Any,
    *,
    more_epochs: int | None = None,
    **settings: Any,
) -> Any:
    """A :class:`engine.training.Trainer` that continues ``checkpoint``: same weights, optimiser, history.

    Without ``more_epochs`` it finishes the run the checkpoint planned (``config.epochs``); with it, it
    trains that many epochs beyond those done. ``settings`` replace those of the checkpoint's
    configuration that do not change what is learned (``device``, ``log_every``, ``detect_anomaly``),
    before the Trainer is built, so its device-dependent choices follow them.
    """
    from dataclasses import replace

    from engine.data import check_classes
    from engine.training import Trainer

    check_classes(dataset, checkpoint.class_names, checkpoint.display_name)
    config = replace(checkpoint.config, **settings)
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
