"""Teaching the model one's own handwriting: samples kept from the canvas, and a taught model.

:class:`Teacher` keeps what the canvas shows as a personal sample of the digit the user names, and teaches
the model on hand those samples on a worker (engine.teaching); the taught model becomes the model on hand
through the :class:`gui.document.CheckpointDocument`, unsaved. It has no widget: it is handed the views
whose data it reads (the canvas's sample, the samples folder) and reports through signals.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from engine import checkpoint as ckpt
from engine.teaching import MIN_TO_HOLD_OUT, save_sample
from gui.dialogs import Dialogs
from gui.document import CheckpointDocument
from gui.my_digits import MyDigitsView
from gui.prediction_panel import RecognitionPanel
from gui.workers import Job, TeachWorker


class Teacher(QObject):
    """``busy`` says whether something else (a run) holds the model; teaching waits for it to end."""

    status = Signal(str)

    def __init__(
        self,
        document: CheckpointDocument,
        recognition: RecognitionPanel,
        samples: MyDigitsView,
        dialogs: Dialogs,
        busy: Callable[[], bool],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.document, self.recognition, self.samples, self.dialogs = document, recognition, samples, dialogs
        self.busy = busy
        self.job = Job(self)
        self.job.finished.connect(lambda: samples.show_teaching(False))

    @property
    def running(self) -> bool:
        return self.job.running

    @Slot(int)
    def keep_sample(self, index: int) -> None:
        """The user says what is on the canvas (the digit selected, in a number): keep the drawing, and its
        28x28 form, as a personal sample."""
        name = self.recognition.predictor.class_names[index]
        sample = self.recognition.sample()
        if sample is None:
            self.status.emit("Nothing recognisable on the canvas to keep")
            return
        try:
            path = save_sample(self.samples.folder, name, *sample)
        except OSError as exc:
            self.dialogs.error("Cannot keep the sample", f"{self.samples.folder}: {exc.strerror or exc}")
            return
        self.samples.refresh()
        count = len(self.samples.samples()[name])
        self.status.emit(f"Kept as a sample of {name} ({count} of {name}; My digits tab, then Teach) in {path.parent}")

    @Slot()
    def teach(self) -> None:
        if self.running or self.busy():
            self.status.emit("Teaching waits until the run in progress has ended")
            return
        self.samples.show_teaching(True)
        self.status.emit("Teaching the model your samples...")
        self.job.start(
            TeachWorker(self.document.model.checkpoint, self.samples.folder, self._autosave_path()),
            taught=self._taught,
            saved=self._autosaved,
            notice=self._notice,
            failed=self._failed,
        )

    def _autosave_path(self) -> Path | None:
        """A new autosave file for the taught model, beside the runs' (None when that folder is unusable)."""
        base = self.document.model.checkpoint
        try:
            return self.document.new_autosave(f"taught-{base.architecture if base else 'digitnet'}", "samples")
        except OSError:
            return None

    @Slot(str)
    def _autosaved(self, path: str) -> None:
        """The taught model, still on hand and unsaved, is offered back at the next launch."""
        if self.document.model.unsaved:
            self.document.remember_unsaved(Path(path))

    @Slot(str)
    def _notice(self, message: str) -> None:
        self.status.emit(message)

    @Slot(object, object)
    def _taught(self, checkpoint: ckpt.Checkpoint, result: Any) -> None:
        self.document.model.adopt(checkpoint, f"taught model ({result.samples} samples)")
        figures = (
            f"On {result.held_out} of your samples it never trained on: {result.base_accuracy:.0%} "
            f"before, {result.taught_accuracy:.0%} after. "
            if result.held_out
            else f"Keep {MIN_TO_HOLD_OUT} or more of a digit to see how it does on samples it never trained on. "
        )
        self.samples.show_result(
            f"Taught {result.samples} samples in {result.seconds:.1f} s. {figures}"
            "The taught model answers on the canvas now; Save keeps it."
        )
        self.status.emit(f"Taught {result.samples} samples; the model on hand is the taught one (not saved)")

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.dialogs.error("Teaching", message)

    def shutdown(self) -> None:
        """Wait for a teaching in progress (a few seconds at most)."""
        self.job.wait()
