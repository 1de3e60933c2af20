"""The model on hand: the one model the app has at any moment, read by Save, Continue, Evaluate, the canvas
and the window title alike.

It is the checkpoint opened, or a run's last completed epoch (never a half-finished one: after Stop, the
model tested on the canvas is the model saved), or the bundled model at start. Qt-free, so its rules are
tested without a window (tests/test_model_on_hand.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.checkpoint import Checkpoint, checkpoint_payload
from engine.events import epochs_text
from engine.inference import Predictor


@dataclass
class ModelOnHand:
    """``checkpoint``: its weights and metadata (None for the bundled model, which is never saved);
    ``file``: where Save writes (None: Save asks for a name); ``saved``: whether that file holds it;
    ``version``: counts the changes, so a view can tell whether what it shows is of this model. Every
    change is told to the functions given to :meth:`on_change`."""

    predictor: Predictor | None = None
    checkpoint: Checkpoint | None = None
    file: Path | None = None
    saved: bool = True
    from_run: bool = False
    version: int = 0
    _listeners: list[Callable[[], object]] = field(default_factory=list, repr=False, compare=False)

    def on_change(self, listener: Callable[[], object]) -> None:
        """Call ``listener()`` after every change of the model, its file or whether it is saved."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    def use_bundled(self, predictor: Predictor) -> None:
        self._change(predictor, None, file=None, saved=True, from_run=False)

    def open(self, checkpoint: Checkpoint) -> None:
        """A checkpoint opened from ``checkpoint.path``: Save writes back there."""
        self._change(
            Predictor.from_checkpoint(checkpoint), checkpoint, file=checkpoint.path, saved=True, from_run=False
        )

    def adopt(self, checkpoint: Checkpoint, label: str) -> None:
        """A model with no file of its own yet (a run's autosave brought back, a model just taught): on
        hand, unsaved, so Save asks for a name."""
        self._change(
            Predictor.from_checkpoint(checkpoint, source=label), checkpoint, file=None, saved=False, from_run=True
        )

    @property
    def unsaved(self) -> bool:
        """A model that would be lost: trained (or restored) and not saved since."""
        return self.can_save and not self.saved

    def start_run(self, continuing: bool) -> None:
        """A run starts: a new model will not be saved over the file of the one before; a continued one
        goes back to its own file."""
        if not continuing:
            self.file = None
            self._changed()

    def epoch_done(self, checkpoint: Checkpoint, label: str) -> None:
        """A run completed an epoch: that epoch's model is the one on hand, not yet saved."""
        self._change(
            Predictor.from_checkpoint(checkpoint, source=label), checkpoint, file=self.file, saved=False, from_run=True
        )

    def saved_to(self, path: Path) -> None:
        self.file = path
        self.saved = True
        self._changed()

    # -- what the others read -------------------------------------------------------------------------------
    @property
    def can_save(self) -> bool:
        return self.checkpoint is not None

    def payload(self) -> dict[str, Any] | None:
        """What Save writes (None when there is nothing to save)."""
        return checkpoint_payload(self.checkpoint) if self.checkpoint is not None else None

    def resume_source(self) -> Checkpoint | None:
        """What Continue continues."""
        return self.checkpoint

    def title(self) -> str:
        """The window title's name: the model's file, or "unsaved model" for a run never saved."""
        if self.file is not None:
            return self.file.name
        return "unsaved model" if self.from_run else ""

    def description(self) -> str:
        """How Continue describes it."""
        if self.checkpoint is None:
            return ""
        if self.from_run:
            return f"The last run ({self.checkpoint.architecture}): {epochs_text(self.checkpoint.epochs_done)} done"
        return f"{self.checkpoint.display_name}: {epochs_text(self.checkpoint.epochs_done)} done"

    def _change(
        self, predictor: Predictor, checkpoint: Checkpoint | None, *, file: Path | None, saved: bool, from_run: bool
    ) -> None:
        self.predictor, self.checkpoint, self.file, self.saved, self.from_run = (
            predictor,
            checkpoint,
            file,
            saved,
            from_run,
        )
        self.version += 1
        self._changed()
