"""The record of every training run: a small store of plain files that the app and the CLI share.

Each run is a folder ``<store>/<id>/`` holding

- ``run.json``: what the run is (configuration, data set, device, start, name, note, its checkpoint
  files) and how it went (status, epochs with their metrics, duration, final and best test accuracy).
  It is rewritten atomically when the run starts, after every epoch and when it ends, so it is never
  half written; a run killed mid-epoch keeps the record of its last completed epoch.
- ``steps.csv``: one line per logged step (``step,epoch,loss,lr,seconds``), appended as the run goes; a
  line cut short by a crash is skipped when read.

A record still marked ``running`` whose process is gone is *interrupted*. A record that cannot be read
is listed as damaged, with the reason, and never stops the others from being listed. The store is
``$DIGIT_STUDIO_RUNS``, or ``runs`` in the user data folder (``~/.local/share/digit-studio/runs``).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import shutil
import socket
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from engine.events import EpochEvent, FailedEvent, FinishedEvent, StepEvent, TrainEvent
from engine.files import atomic_write

RECORD = "run.json"
STEPS = "steps.csv"
MAX_RECORD_BYTES = 4 << 20  # a run.json is a few kB; anything this large is not one
MAX_STEPS_BYTES = 128 << 20  # about 4 million logged steps; more is not read
MAX_STEP_LINE = 200  # a logged step is about 40 characters; a longer line is not one
MAX_DEPTH = 32  # a record's configuration nests a level or two; deeper is not a record


def default_store() -> Path:
    folder = os.environ.get("DIGIT_STUDIO_RUNS")
    if folder:
        return Path(folder).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("digit-studio", appauthor=False)) / "runs"


@dataclass
class Run:
    """One run as listed: the fields of its ``run.json`` (``damaged`` says why it could not be read)."""

    folder: Path
    id: str
    name: str = ""
    note: str = ""
    status: str = "damaged"  # running, finished, stopped, failed, interrupted, damaged
    started: str = ""  # ISO 8601, local time
    seconds: float = 0.0  # wall time from start to the last epoch or the end
    model: str = ""
    dataset: str = ""
    device: str = ""
    source: str = ""  # "app" or "cli"
    epochs_done: int = 0
    total_epochs: int = 0
    final_accuracy: float | None = None
    best_accuracy: float | None = None
    config: dict[str, Any] = field(default_factory=dict)
    epochs: list[dict[str, float | None]] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    damaged: str | None = None

    @property
    def title(self) -> str:
        return self.name or f"{self.model} on {self.dataset}, {self.started[:16].replace('T', ' ')}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "note": self.note,
            "status": self.status,
            "started": self.started,
            "seconds": round(self.seconds, 3),
            "model": self.model,
            "dataset": self.dataset,
            "device": self.device,
            "source": self.source,
            "epochs_done": self.epochs_done,
            "total_epochs": self.total_epochs,
            "final_accuracy": self.final_accuracy,
            "best_accuracy": self.best_accuracy,
            "config": self.config,
            "epochs": self.epochs,
            "checkpoints": self.checkpoints,
            "folder": str(self.folder),
            "damaged": self.damaged,
        }


class RunRecorder:
    """Writes one run's record as its events arrive: pass :meth:`on_event` along with the run's other
    event callbacks. Recording never stops a run: a write that fails is reported once through ``warn``."""

    def __init__(
        self,
        store: Path,
        config: dict[str, Any],
        dataset: str,
        device: str,
        source: str,
        checkpoints: Iterable[str] = (),
        warn: Any = None,
        now: _dt.datetime | None = None,
    ) -> None:
        started = (now or _dt.datetime.now()).replace(microsecond=0)
        self.warn = warn or (lambda message: None)
        self._warned = False
        self._start = time.monotonic()
        self.run = Run(
            folder=Path(),
            id="",
            status="running",
            started=started.isoformat(),
            model=str(config.get("model", "")),
            dataset=dataset,
            device=device,
            source=source,
            total_epochs=int(config.get("epochs", 0) or 0),
            config=dict(config),
            checkpoints=[str(p) for p in checkpoints],
        )
        self._steps = None
        try:
            store.mkdir(parents=True, exist_ok=True)
            self.run.folder = _new_folder(store, f"{started:%Y%m%d-%H%M%S}-{self.run.model or 'run'}")
            self.run.id = self.run.folder.name
            self._steps = open(self.run.folder / STEPS, "a", encoding="utf-8")  # noqa: SIM115 (the run's life)
            self._steps.write("step,epoch,loss,lr,seconds\n")
            self._write()
        except OSError as exc:
            self._failed(exc)

    @classmethod
    def for_trainer(
        cls, store: Path, trainer: Any, source: str, checkpoints: Iterable[str | Path] = (), warn: Any = None
    ) -> RunRecorder:
        """The record of the run ``trainer`` is about to train."""
        dataset = getattr(trainer.dataset, "name", "") or str(getattr(trainer.dataset, "folder", ""))
        return cls(
            store,
            trainer.config.to_dict(),
            dataset,
            str(trainer.device),
            source,
            checkpoints=[str(p) for p in checkpoints],
            warn=warn,
        )

    def add_checkpoint(self, path: str | Path) -> None:
        """A checkpoint file this run wrote (an autosave, a Save as)."""
        if str(path) not in self.run.checkpoints:
            self.run.checkpoints.append(str(path))
            self._write()

    def on_event(self, event: TrainEvent) -> None:
        if isinstance(event, StepEvent):
            self._append(
                f"{event.step},{event.epoch + (event.batch / max(event.batches_per_epoch, 1)):.4f},"
                f"{_number(event.loss)},{_number(event.lr)},{time.monotonic() - self._start:.3f}\n"
            )
        elif isinstance(event, EpochEvent):
            accuracy = _finite(event.test_accuracy)
            self.run.epochs.append(
                {
                    "epoch": event.epoch,
                    "train_loss": _finite(event.train_loss),
                    "test_loss": _finite(event.test_loss),
                    "test_accuracy": accuracy,
                    "train_accuracy": _finite(event.train_accuracy),
                    "lr": _finite(event.lr),
                    "seconds": round(time.monotonic() - self._start, 3),
                }
            )
            self.run.epochs_done = event.epoch
            self.run.final_accuracy = accuracy
            known = [e["test_accuracy"] for e in self.run.epochs if e["test_accuracy"] is not None]
            self.run.best_accuracy = max(known) if known else None
            self._write(flush_steps=True)
        elif isinstance(event, FinishedEvent):
            self.run.status = "stopped" if event.stopped else "finished"
            self._write(flush_steps=True)
        elif isinstance(event, FailedEvent):
            self.run.status = "failed"
            self.run.note = self.run.note or event.message
            self._write(flush_steps=True)

    def close(self) -> None:
        """The end of the process's interest in this run (a run still ``running`` then ended unreported)."""
        if self.run.status == "running":
            self.run.status = "stopped"
            self._write(flush_steps=True)
        if self._steps is not None:
            self._steps.close()
            self._steps = None

    def _append(self, line: str) -> None:
        if self._steps is None:
            return
        try:
            self._steps.write(line)
        except OSError as exc:
            self._failed(exc)

    def _write(self, flush_steps: bool = False) -> None:
        if not self.run.id:
            return
        self.run.seconds = time.monotonic() - self._start
        try:
            if flush_steps and self._steps is not None:
                self._steps.flush()
            record = {**self.run.to_dict(), "pid": os.getpid(), "host": socket.gethostname()}
            del record["folder"], record["damaged"]
            _write_record(self.run.folder / RECORD, record)
        except (OSError, ValueError) as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            self.warn(f"the run is not recorded: {exc}")


def _new_folder(store: Path, stem: str) -> Path:
    for n in range(1, 1000):
        folder = store / (stem if n == 1 else f"{stem}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise OSError(f"{store}: no free name for a run folder")


def _finite(value: Any) -> float | None:
    """A finite float, or None (not a number, infinite, NaN, or an integer beyond a float's range)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading if it is a regular file; else OSError or ValueError. Opened without
    blocking and checked once open (a FIFO, a device or a link to one is refused, never read), so the check
    and the read are of the same file."""
    handle = os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)), "rb")
    if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
        handle.close()
        raise ValueError(f"{path.name} is not a regular file")
    return handle


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes; else OSError or ValueError."""
    with _open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limit:
            raise ValueError(f"{path.name} is {size:,} bytes, too large")
        return handle.read(limit + 1)[:limit]


def _step_lines(path: Path, chunk: int = 1 << 20) -> list[str]:
    """The complete lines of a steps file, read in chunks up to MAX_STEPS_BYTES; a line longer than a step
    can be is skipped as it is read, so one endless line costs one chunk of memory."""
    lines: list[str] = []
    with _open_regular(path) as handle:
        partial, skipping, read = b"", False, 0
        while read < MAX_STEPS_BYTES and (block := handle.read(min(chunk, MAX_STEPS_BYTES - read))):
            read += len(block)
            pieces = (partial + block).split(b"\n")
            partial = pieces.pop()  # complete only once its newline arrives
            for piece in pieces:
                if not skipping and len(piece) <= MAX_STEP_LINE:
                    lines.append(piece.decode("utf-8", errors="replace"))
                skipping = False
            if len(partial) > MAX_STEP_LINE:
                partial, skipping = b"", True
    return lines


def _depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deep lists and dicts nest in ``value``, counted up to ``limit`` + 1 without recursion."""
    deepest, level = 0, [value]
    while level and deepest <= limit:
        deepest += 1
        level = [
            child
            for item in level
            if isinstance(item, (dict, list))
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        level = [item for item in level if isinstance(item, (dict, list))]
    return deepest


def _number(value: float) -> str:
    return f"{value:.6g}" if math.isfinite(value) else "nan"


def list_runs(store: Path | None = None) -> list[Run]:
    """Every run in the store, newest first; damaged records included, marked."""
    store = store or default_store()
    try:
        folders = [p for p in store.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return []
    runs = [read_run(folder) for folder in folders]
    return sorted(runs, key=lambda r: (r.started, r.id), reverse=True)


def read_run(folder: Path) -> Run:
    run = Run(folder=folder, id=folder.name)
    try:
        data = json.loads(read_regular(folder / RECORD, MAX_RECORD_BYTES).decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{RECORD} is not a record")
        if _depth(data) > MAX_DEPTH:
            raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
        _fill(run, data)
    except FileNotFoundError:
        run.damaged = f"no {RECORD}"
        return run
    except (OSError, ValueError, TypeError, OverflowError, RecursionError, UnicodeDecodeError) as exc:
        run.status, run.damaged = "damaged", f"{RECORD} cannot be read: {str(exc)[:300]}"
        return run
    if run.status == "running" and not _alive(data.get("pid"), data.get("host")):
        run.status = "interrupted"
    return run


def _fill(run: Run, data: dict[str, Any]) -> None:
    texts = ("name", "note", "status", "started", "model", "dataset", "device", "source")
    for key in texts:
        value = data.get(key, "")
        if not isinstance(value, str):
            raise ValueError(f"{key} is not text")
        setattr(run, key, value[:1000])
    for key in ("epochs_done", "total_epochs"):
        value = data.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 10**9:
            raise ValueError(f"{key} is not a count")
        setattr(run, key, value)
    run.seconds = _finite(data.get("seconds")) or 0.0
    run.final_accuracy = _finite(data.get("final_accuracy"))
    run.best_accuracy = _finite(data.get("best_accuracy"))
    config, epochs, checkpoints = data.get("config", {}), data.get("epochs", []), data.get("checkpoints", [])
    if not isinstance(config, dict) or not isinstance(epochs, list) or not isinstance(checkpoints, list):
        raise ValueError("config, epochs or checkpoints has the wrong type")
    run.config = config
    run.epochs = [{k: _finite(v) for k, v in e.items() if isinstance(k, str)} for e in epochs if isinstance(e, dict)]
    run.checkpoints = [str(c) for c in checkpoints if isinstance(c, str)]


def _alive(pid: Any, host: Any) -> bool:
    if host != socket.gethostname():
        return True  # another machine's run: it cannot be asked, so it is taken at its word
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31:
        return False  # no process has such an id
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


@dataclass(frozen=True)
class Curves:
    """A run's logged steps: global step, fractional epoch, loss, learning rate, seconds since the start."""

    step: np.ndarray
    epoch: np.ndarray
    loss: np.ndarray
    lr: np.ndarray
    seconds: np.ndarray


def read_curves(run: Run) -> Curves:
    """The run's steps; lines a crash cut short, or that are not numbers, are skipped."""
    try:
        lines = _step_lines(run.folder / STEPS)[1:]  # the header left out
    except (OSError, ValueError):
        lines = []
    try:  # the common case, every line whole: one conversion of all the numbers
        table = np.array(",".join(lines).split(","), dtype=np.float64).reshape(-1, 5) if lines else None
        if table is not None and len(table) != len(lines):
            table = None
    except ValueError:
        table = None
    if table is None:
        rows: list[list[float]] = []
        for line in lines:
            try:
                values = [float(p) for p in line.split(",")]
            except ValueError:
                continue
            if len(values) == 5:
                rows.append(values)
        table = np.array(rows, dtype=np.float64).reshape(-1, 5)
    return Curves(*(table[:, k] for k in range(5)))


def update_run(run: Run, name: str | None = None, note: str | None = None) -> None:
    """Rename a run or change its note (the only fields a user edits)."""
    path = run.folder / RECORD
    data = json.loads(read_regular(path, MAX_RECORD_BYTES).decode("utf-8"))
    if name is not None:
        data["name"] = run.name = name.strip()[:200]
    if note is not None:
        data["note"] = run.note = note.strip()[:2000]
    _write_record(path, data)


def _write_record(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=1, allow_nan=False)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def record_checkpoint(store: Path, autosave: Path, saved: Path) -> bool:
    """Add ``saved`` (a Save as of a run's model) to the record of the run whose autosave is ``autosave``;
    whether one was found. A record that cannot be read or written is left as it is."""
    for run in list_runs(store):
        if str(autosave) in run.checkpoints and str(saved) not in run.checkpoints:
            try:
                data = json.loads(read_regular(run.folder / RECORD, MAX_RECORD_BYTES).decode("utf-8"))
                data["checkpoints"] = [*run.checkpoints, str(saved)]
                _write_record(run.folder / RECORD, data)
            except (OSError, ValueError):
                return False
            return True
    return False


def delete_run(run: Run, owned: Iterable[Path] = ()) -> list[Path]:
    """Remove the run's record and those of its checkpoints that lie in ``owned`` folders (the app's
    autosaves); a checkpoint the user named is theirs and is left. Returns what was removed."""
    removed = []
    folders = [Path(f).resolve() for f in owned]
    for checkpoint in run.checkpoints:
        path = Path(checkpoint)
        try:
            if any(path.resolve().is_relative_to(f) for f in folders) and path.is_file():
                path.unlink()
                removed.append(path)
        except OSError:
            continue
    shutil.rmtree(run.folder, ignore_errors=True)
    removed.append(run.folder)
    return removed
