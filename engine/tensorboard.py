"""A run's scalars for TensorBoard, written as the run's events arrive.

``tensorboard`` is an optional extra (``pip install -e '.[tensorboard]'``); without it, asking for
TensorBoard output is a one-line error naming the command that installs it.

The event file is written on the training thread itself, record by record, with TensorBoard's own record
format: no writer thread whose failure (a full disk) would print a traceback or end the run. A write that
fails stops the logging, says so once through ``on_failure``, and the run goes on.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.events import EpochEvent, StepEvent, TrainEvent

SMOOTHING = 0.6  # TensorBoard's own default for its smoothing slider


class ScalarWriter:
    """``on_event`` writes loss, smoothed loss, learning rate and samples/s per logged step, and test loss
    and accuracy per epoch, all against the global step."""

    def __init__(self, folder: Path, on_failure: Callable[[str], None] | None = None) -> None:
        try:
            from tensorboard.compat.proto.event_pb2 import Event
            from tensorboard.summary.writer.record_writer import RecordWriter
            from torch.utils.tensorboard.summary import scalar
        except ImportError as exc:
            raise UserError(
                "--tensorboard needs the tensorboard package: pip install -e '.[tensorboard]' "
                "(or pip install tensorboard)"
            ) from exc
        self._event, self._scalar = Event, scalar
        self.folder = folder
        self.on_failure = on_failure
        self.failed: str | None = None
        name = f"events.out.tfevents.{time.time():.0f}.{socket.gethostname()}.{os.getpid()}.0"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._records: Any = RecordWriter(open(folder / name, "xb"))  # noqa: SIM115 (the run's life)
            self._records.write(Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
        except OSError as exc:
            raise UserError(f"{folder}: cannot write TensorBoard logs there ({exc.strerror or exc})") from exc
        self._smoothed: float | None = None
        self._step = 0

    def on_event(self, event: TrainEvent) -> None:
        if self.failed is not None:
            return
        try:
            if isinstance(event, StepEvent):
                self._step = event.step
                previous = self._smoothed if self._smoothed is not None else event.loss
                self._smoothed = SMOOTHING * previous + (1 - SMOOTHING) * event.loss
                self._add("loss/train", event.loss, event.step)
                self._add("loss/train_smoothed", self._smoothed, event.step)
                self._add("learning_rate", event.lr, event.step)
                self._add("samples_per_second", event.samples_per_second, event.step)
            elif isinstance(event, EpochEvent):
                self._add("loss/test", event.test_loss, self._step)
                self._add("accuracy/test", event.test_accuracy, self._step)
                self._add("epoch", event.epoch, self._step)
                self._records.flush()
        except OSError as exc:
            self._fail(exc)

    def _add(self, tag: str, value: float, step: int) -> None:
        event = self._event(wall_time=time.time(), step=step, summary=self._scalar(tag, float(value)))
        self._records.write(event.SerializeToString())

    def _fail(self, exc: OSError) -> None:
        self.failed = f"TensorBoard logs in {self.folder} stopped: {exc.strerror or exc}; training goes on"
        try:
            self._records.close()
        except OSError:
            pass
        if self.on_failure is not None:
            self.on_failure(self.failed)

    def close(self) -> None:
        if self.failed is None:
            try:
                self._records.close()
            except OSError as exc:
                self._fail(exc)
