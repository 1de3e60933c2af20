"""The checkpoint document: the model on hand as a document application treats its file.

:class:`CheckpointDocument` owns the :class:`gui.model_on_hand.ModelOnHand` and everything that opens,
saves or would lose it: Open (on a worker: a file at the size limits takes a second or more to check),
Save, Save as, the recent files, restoring an autosave after a crash, and Save / Discard / Cancel before
Quit or a new run would drop an unsaved model. It asks through the :class:`gui.dialogs.Dialogs` handed to
it and tells the window through signals; it has no widget.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from engine import checkpoint as ckpt
from engine.errors import UserError
from engine.events import epochs_text
from engine.files import check_output
from engine.inference import load_bundled
from gui.autosave import MAX_KEPT, autosave_dir, new_autosave_path, prune
from gui.dialogs import Dialogs
from gui.model_on_hand import ModelOnHand
from gui.settings import AppSettings
from gui.workers import CheckpointWorker, Job

MAX_RECENT = 8
NOTHING_TO_SAVE = "Nothing to save yet: train a model (one epoch at least) or open one."


class CheckpointDocument(QObject):
    """``changed``: the model on hand (or its file, or whether it is saved) changed; ``loaded``: a
    checkpoint was opened as the model on hand (the panels take its history and settings); ``opened``: how
    the last :meth:`open` ended; ``saved``: the checkpoint and the file it was saved to."""

    changed = Signal()
    loaded = Signal(object)  # engine.checkpoint.Checkpoint
    opened = Signal(bool)
    saved = Signal(object, object)  # engine.checkpoint.Checkpoint, Path
    recent_changed = Signal()
    status = Signal(str)

    def __init__(
        self, settings: AppSettings, dialogs: Dialogs, inputs: Callable[[], list[Path]], parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.model = ModelOnHand()
        self.model.on_change(self.changed.emit)
        self.settings = settings
        self.dialogs = dialogs
        self.inputs = inputs  # the files the app reads (the data sets loaded): never written over
        self.opening = Job(self)
        self.opening.finished.connect(self._opening_done)
        self.locked = False  # a run is on: nothing may replace its model
        self._restoring = False

    # -- opening ---------------------------------------------------------------------------------------------
    def load_bundled(self) -> None:
        try:
            self.model.use_bundled(load_bundled())
        except UserError as exc:
            self.status.emit(f"No default model: {exc}")

    def open_dialog(self) -> None:
        path = self.dialogs.open_file(
            "Open checkpoint", self.settings.checkpoints_dir, "Checkpoints (*.pt);;All files (*)"
        )
        if path:
            self.open(path)

    def open(self, path: str | Path) -> bool:
        """Start opening a checkpoint on a worker; whether it started. On any problem the model on hand
        stays and the problem is shown. ``opened`` says how it ended (False at once when refused)."""
        refusal = None
        if self.locked:
            refusal = f"Not opened {Path(path).name}: stop the training first"
        elif self.opening.running:
            refusal = f"Not opened {Path(path).name}: still opening {Path(self.opening.worker.path).name}"
        if refusal is not None:
            self.status.emit(refusal)
            self.opened.emit(False)
            return False
        self.status.emit(f"Opening {Path(path).name}...")
        self.opening.start(CheckpointWorker(str(path)), loaded=self._loaded, failed=self._failed)
        return True

    def restore(self, path: str | Path) -> bool:
        """Open an autosave as the model on hand, unsaved (Save asks for a name), as the run left it."""
        self._restoring = True
        started = self.open(path)
        self._restoring = started
        return started

    def offer_restore(self) -> None:
        """The last session ended with a model that was never saved (a crash, a kill): offer it back."""
        path = self.settings.unsaved_autosave
        self.settings.forget("unsaved_autosave")
        if (
            path
            and Path(path).is_file()
            and self.dialogs.confirm(
                "Restore the unsaved model?",
                f"The last session ended with a model that was never saved. "
                f"Its last completed epoch was autosaved in {path}. Open it again?",
            )
        ):
            self.restore(path)

    @Slot()
    def _opening_done(self) -> None:
        self._restoring = False

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.status.emit("Not opened: see the message")
        self.dialogs.error("Cannot open checkpoint", message)
        self.opened.emit(False)

    @Slot(object)
    def _loaded(self, loaded: ckpt.Checkpoint) -> None:
        if self.locked:  # a run started while the file was being read
            self.status.emit(f"Not opened {loaded.display_name}: a training run started meanwhile")
            self.opened.emit(False)
            return
        if self._restoring:
            self.model.adopt(loaded, f"restored run ({loaded.architecture}, {epochs_text(loaded.epochs_done)})")
            self.remember_unsaved(Path(loaded.path))
        else:
            self.model.open(loaded)
            self.settings.checkpoints_dir = Path(loaded.path).parent
            self.remember_recent(str(Path(loaded.path).resolve()))
        self.loaded.emit(loaded)
        self.opened.emit(True)

    # -- saving ----------------------------------------------------------------------------------------------
    def save(self) -> None:
        if self.model.file is None:
            self.save_as()
        else:
            self.save_to(self.model.file)

    def save_as(self) -> None:
        if not self.model.can_save:
            self.dialogs.error("Save checkpoint", NOTHING_TO_SAVE)
            return
        path, _ = self.dialogs.save_file(
            "Save checkpoint", self.settings.checkpoints_dir / "digits.pt", "Checkpoints (*.pt)"
        )
        if path:
            self.save_to(path)

    def save_to(self, path: str | Path) -> bool:
        payload = self.model.payload()
        if payload is None:
            self.dialogs.error("Save checkpoint", NOTHING_TO_SAVE)
            return False
        if not self.may_write(path, "Cannot save checkpoint"):
            return False
        try:
            saved = ckpt.save(payload, path)
        except UserError as exc:
            self.dialogs.error("Cannot save checkpoint", str(exc))
            return False
        checkpoint = self.model.checkpoint
        self.model.saved_to(saved)
        self.remember_unsaved(None)
        self.settings.checkpoints_dir = saved.parent
        self.remember_recent(str(saved.resolve()))
        self.saved.emit(checkpoint, saved)
        self.status.emit(f"Saved {saved}")
        return True

    def may_write(self, path: str | Path, title: str, keep_model_file: bool = False) -> bool:
        """Whether the app may write ``path`` (engine.files.check_output); if not, says why in a dialog.

        No file is written over a data set the app has loaded, nor, with ``keep_model_file``, over the
        model's own checkpoint (an export named like it); Save itself does replace the model's file."""
        inputs: list[Path | None] = list(self.inputs())
        if keep_model_file:
            inputs += [self.model.file, self.model.checkpoint.path if self.model.checkpoint is not None else None]
        try:
            check_output(path, inputs)
        except UserError as exc:
            self.dialogs.error(title, str(exc))
            return False
        return True

    def keep_or_discard(self, doing: str) -> bool:
        """Before the unsaved model on hand would be dropped (Quit, a new run): Save, Discard or Cancel.
        True to go on (saved, or discarded), False to stay."""
        if not self.model.unsaved:
            return True
        answer = self.dialogs.ask_unsaved(
            f"{doing}: the model on hand ({self.model.predictor.source}) has not been saved. Save it first?"
        )
        if answer == "save":
            self.save()
            return not self.model.unsaved  # a save dialog cancelled, or a save that failed: stay
        return answer == "discard"

    def remember_unsaved(self, autosave: Path | None) -> None:
        """Where the unsaved model on hand is autosaved, for the next launch to offer (None: nothing to offer)."""
        if autosave is None or not self.model.unsaved:
            self.settings.forget("unsaved_autosave")
        else:
            self.settings.unsaved_autosave = str(autosave)

    def new_autosave(self, model: str, dataset: str) -> Path:
        """A new file for autosaving a model (a run's epochs, a taught model), after pruning the autosave
        folder to make room: never the model's own file or one on the recent list. OSError when the folder
        cannot be made."""
        folder = autosave_dir()
        folder.mkdir(parents=True, exist_ok=True)
        file = self.model.file
        prune(folder, keep=MAX_KEPT - 1, protect=[*([file] if file else []), *map(Path, self.recent())])
        return new_autosave_path(folder, model, dataset)

    # -- recent files ----------------------------------------------------------------------------------------
    def recent(self) -> list[str]:
        return self.settings.recent_checkpoints

    def remember_recent(self, path: str) -> None:
        self.settings.recent_checkpoints = [path, *(p for p in self.recent() if p != path)][:MAX_RECENT]
        self.recent_changed.emit()

    def clear_recent(self) -> None:
        self.settings.recent_checkpoints = []
        self.recent_changed.emit()

    def shutdown(self) -> None:
        """Wait for an open in progress (bounded by the checkpoint size limits)."""
        self.opening.wait()
