"""A run's scalars for TensorBoard, written with ``torch.utils.tensorboard`` as the run's events arrive.

``tensorboard`` is an optional extra (``pip install -e '.[tensorboard]'``); without it, asking for
TensorBoard output is a one-line error naming the command that installs it.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import UserError
from engine.events import EpochEvent, StepEvent, TrainEvent

SMOOTHING = 0.6  # TensorBoard's own default for its smoothing slider


class ScalarWriter:
    """``on_event`` writes loss, smoothed loss, learning rate and samples/s per logged step, and test loss
    and accuracy per epoch, all against the global step."""

    def __init__(self, folder: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise UserError("--tensorboard needs the tensorboard package: pip install -e '.[tensorboard]' "
                            "(or pip install tensorboard)") from exc
        try:
            self.writer = SummaryWriter(log_dir=str(folder))
        except OSError as exc:
            raise UserError(f"{folder}: cannot write TensorBoard logs there ({exc.strerror or exc})") from exc
        self._smoothed: float | None = None
        self._step = 0

    def on_event(self, event: TrainEvent) -> None:
        if isinstance(event, StepEvent):
            self._step = event.step
            previous = self._smoothed if self._smoothed is not None else event.loss
            self._smoothed = SMOOTHING * previous + (1 - SMOOTHING) * event.loss
            self.writer.add_scalar("loss/train", event.loss, event.step)
            self.writer.add_scalar("loss/train_smoothed", self._smoothed, event.step)
            self.writer.add_scalar("learning_rate", event.lr, event.step)
            self.writer.add_scalar("samples_per_second", event.samples_per_second, event.step)
        elif isinstance(event, EpochEvent):
            self.writer.add_scalar("loss/test", event.test_loss, self._step)
            self.writer.add_scalar("accuracy/test", event.test_accuracy, self._step)
            self.writer.add_scalar("epoch", event.epoch, self._step)
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()
