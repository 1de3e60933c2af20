"""A training session: one run at a time, from Train to its end, with everything that belongs to it.

:class:`TrainingSession` owns the training worker's lifetime (its :class:`gui.workers.Job`), the run's
autosave file (pruning the folder to make room), its record in the run store and its TensorBoard folder,
Pause / Resume / Stop, and the policy for a run that learns nothing: an epoch no better than guessing does
not replace the model on hand, and the end of such a run asks first. Each completed epoch's model becomes
the model on hand through the :class:`gui.document.CheckpointDocument`. It reports through signals and
asks through the :class:`gui.dialogs.Dialogs`; it has no widget.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from engine import checkpoint as ckpt
from engine.config import TrainConfig
from engine.events import EpochEvent, FinishedEvent, StepEvent, epochs_text
from gui.autosave import autosave_dir
from gui.datasets import DatasetLoader
from gui.dialogs import Dialogs
from gui.document import CheckpointDocument
from gui.settings import AppSettings
from gui.workers import Job, TrainingWorker


@dataclass(frozen=True)
class RunShape:
    """What the progress of a run is measured against."""

    steps_per_epoch: int
    epochs: int
    batch_size: int

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def progress(self, last: StepEvent) -> tuple[str, str]:
        """The progress bar's text and the status bar's speed line after ``last``."""
        remaining = self.total_steps - last.step
        eta = remaining * self.batch_size / max(last.samples_per_second, 1e-9)
        return (
            f"epoch {last.epoch + 1}/{self.epochs}  batch {last.batch}/{last.batches_per_epoch}",
            f"{last.samples_per_second:,.0f} samples/s  ETA {duration(eta)}  loss {last.loss:.4f}",
        )


class TrainingSession(QObject):
    """``running_changed``: a run began (Train) or has ended and its thread is gone; ``started``: the
    worker's description of the run (config, steps per epoch, epochs done, history, device); ``steps``,
    ``epoch``: its events; ``finished``: the FinishedEvent, or None when the run failed; ``ended``: the
    one-line outcome for the progress bar; ``notice``: a fallback the user should know about."""

    running_changed = Signal(bool)
    started = Signal(object)
    steps = Signal(object)  # list[StepEvent]
    epoch = Signal(object)  # EpochEvent
    finished = Signal(object)  # FinishedEvent | None
    ended = Signal(str)
    progress = Signal(int, int, str, str)  # step, of how many, the progress bar's words, the speed line
    notice = Signal(str)
    status = Signal(str)
    run_saved = Signal(object, object)  # the run's autosave, the file its model was saved to (its record)

    def __init__(
        self,
        document: CheckpointDocument,
        loader: DatasetLoader,
        settings: AppSettings,
        dialogs: Dialogs,
        runs_store: Path,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.document, self.loader, self.settings, self.dialogs = document, loader, settings, dialogs
        self.runs_store = runs_store
        self.job = Job(self)
        self.job.finished.connect(self.run_done)
        self.shape = RunShape(1, 1, 1)
        self.autosave_path: Path | None = None
        self._held: tuple[ckpt.Checkpoint, str] | None = None  # an epoch that learned nothing
        self._run_model: tuple[ckpt.Checkpoint, Path | None] | None = None  # the run's last epoch, its autosave
        self._outcome = ""
        document.saved.connect(self._model_saved)

    @property
    def running(self) -> bool:
        return self.job.running

    # -- the run's lifecycle ---------------------------------------------------------------------------------
    def start(self, config: TrainConfig, continuing: bool) -> None:
        """Train: a new model with ``config``, or the model on hand for ``config.epochs`` more epochs."""
        if self.running:
            return
        resume = self.document.model.resume_source() if continuing else None
        if resume is None and not self.document.keep_or_discard("Start a new run"):
            return
        self._set_running(True)
        self.loader.ensure(lambda dataset: self._start_worker(dataset, config, resume), on_fail=self._no_data)

    def pause(self, paused: bool) -> None:
        if not self.running:
            return
        control = self.job.worker.control
        control.pause() if paused else control.resume()
        self.status.emit("Paused" if paused else "Resumed")

    def stop(self, wait: bool = False) -> None:
        if self.running:
            self.job.cancel()
            self.status.emit("Stopping...")
        if wait:
            self.job.wait()

    def _set_running(self, running: bool) -> None:
        self.document.locked = running  # a checkpoint opened mid-run would replace the run's model
        self.running_changed.emit(running)

    def _no_data(self) -> None:
        """The data set could not be loaded (or its download was cancelled): nothing runs."""
        self._set_running(False)
        self.ended.emit("not started: the data set could not be loaded")

    def _start_worker(self, dataset: Any, config: TrainConfig, resume: ckpt.Checkpoint | None) -> None:
        self.document.model.start_run(continuing=resume is not None)
        self.autosave_path = self._new_autosave_path(config.model, dataset.name)
        self.job.start(
            TrainingWorker(
                dataset,
                config,
                resume,
                self.autosave_path,
                low_priority=self.settings.low_priority,
                runs_store=self.runs_store,
                tensorboard_dir=self._tensorboard_dir(),
            ),
            started_training=self._started,
            steps=self._steps,
            epoch=self._epoch,
            epoch_model=self.take_epoch_model,
            saved=self._autosaved,
            notice=self._notice,
            finished=self._finished,
            failed=self._failed,
        )
        self.status.emit("Preparing training...")

    def _new_autosave_path(self, model: str, dataset: str) -> Path | None:
        """This run's autosave file (CheckpointDocument.new_autosave); None, and a notice, when the folder
        is unusable."""
        try:
            return self.document.new_autosave(model, dataset)
        except OSError as exc:
            self.notice.emit(f"No autosaves for this run: cannot create {autosave_dir()} ({exc.strerror or exc})")
            return None

    def _tensorboard_dir(self) -> Path | None:
        """A subfolder per run of the chosen folder, as TensorBoard expects to tell runs apart."""
        folder = self.settings.tensorboard_dir
        if not folder:
            return None
        return Path(folder) / (self.autosave_path.stem if self.autosave_path else time.strftime("run-%Y%m%d-%H%M%S"))

    def choose_tensorboard_dir(self) -> None:
        """A folder for the scalars of the runs that start next, or none (Cancel)."""
        start = Path(self.settings.tensorboard_dir or Path.home())
        folder = self.dialogs.folder("TensorBoard logs (Cancel: none)", start)
        self.settings.tensorboard_dir = folder or ""
        self.status.emit(f"TensorBoard logs of the next runs go to {folder}" if folder else "No TensorBoard logs")

    # -- the worker's reports --------------------------------------------------------------------------------
    @Slot(object)
    def _started(self, info: dict) -> None:
        config = info["config"]
        self.shape = RunShape(info["steps_per_epoch"], config.epochs, config.batch_size)
        self.started.emit(info)
        self.progress.emit(info["epochs_done"] * self.shape.steps_per_epoch, self.shape.total_steps, "", "")
        self.status.emit(f"Training {config.model} on {info['device']}")

    @Slot(object)
    def _steps(self, events: list[StepEvent]) -> None:
        self.steps.emit(events)
        self.progress.emit(events[-1].step, self.shape.total_steps, *self.shape.progress(events[-1]))

    @Slot(str)
    def _notice(self, message: str) -> None:
        self.notice.emit(message)

    @Slot(object)
    def _epoch(self, event: EpochEvent) -> None:
        self.status.emit(f"Epoch {event.epoch}/{event.total_epochs}: test accuracy {event.test_accuracy:.2%}")
        self.epoch.emit(event)

    @Slot(object)
    def take_epoch_model(self, checkpoint: ckpt.Checkpoint) -> None:
        """The run's last completed epoch is now the model on hand, unless it has learned nothing: an
        epoch no better than guessing is held back, and the end of the run asks."""
        planned, done = self.shape.epochs, checkpoint.epochs_done
        progress = epochs_text(done) if done >= planned else f"{done} of {epochs_text(planned)}"
        label = f"training run ({checkpoint.architecture}, {progress})"
        self._run_model = (checkpoint, self.autosave_path)
        if at_chance(checkpoint):
            self._held = (checkpoint, label)
            self.status.emit(
                f"Epoch {done}: test accuracy {last_accuracy(checkpoint):.2%}, no better than "
                "guessing; the model on hand stays"
            )
            return
        self._held = None
        self._adopt(checkpoint, label)

    def _adopt(self, checkpoint: ckpt.Checkpoint, label: str) -> None:
        self.document.model.epoch_done(checkpoint, label)
        self.document.remember_unsaved(self.autosave_path)

    @Slot(str)
    def _autosaved(self, path: str) -> None:
        self.status.emit(f"Autosaved {path}")

    @Slot(object)
    def _finished(self, event: FinishedEvent) -> None:
        verb = "Stopped" if event.stopped else "Finished"
        accuracy = f", test accuracy {event.test_accuracy:.2%}" if event.test_accuracy is not None else ""
        self.status.emit(f"{verb} after {epochs_text(event.epochs_done)}{accuracy}")
        learned = self._held is None
        self._outcome = f"{verb.lower() if learned else 'did not learn'}: {epochs_text(event.epochs_done)}{accuracy}"
        self.finished.emit(event)

    @Slot(str)
    def _failed(self, message: str) -> None:
        self._outcome = "failed"
        self._held = None
        self.dialogs.error("Training failed", message)
        self.finished.emit(None)

    @Slot()
    def run_done(self) -> None:
        self._set_running(False)
        self.ended.emit(self._outcome)
        held, self._held = self._held, None
        if held is not None:  # no better than guessing: its model replaces the one on hand only if asked
            checkpoint, label = held
            chance = 1 / len(checkpoint.class_names)
            if self.dialogs.confirm(
                "The run did not learn",
                f"The run ended at {last_accuracy(checkpoint):.2%} test accuracy, no better than guessing "
                f"({chance:.0%}): it did not learn (a learning rate of {checkpoint.config.lr:g} may be too "
                "high). Use its model anyway? No keeps the model you had.",
            ):
                self._adopt(checkpoint, label)

    @Slot(object, object)
    def _model_saved(self, checkpoint: ckpt.Checkpoint, path: Path) -> None:
        """A Save of the run's model joins the run's record."""
        if self._run_model is not None and checkpoint is self._run_model[0] and self._run_model[1] is not None:
            self.run_saved.emit(self._run_model[1], path)


def last_accuracy(checkpoint: ckpt.Checkpoint) -> float:
    return float(checkpoint.history.epochs[-1]["test_accuracy"]) if checkpoint.history.epochs else 0.0


def at_chance(checkpoint: ckpt.Checkpoint) -> bool:
    """Whether a model's last test accuracy is no better than guessing (within half of chance's share)."""
    return bool(checkpoint.history.epochs) and last_accuracy(checkpoint) <= 1.5 / len(checkpoint.class_names)


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"
