"""What a training run reports, and how it is steered.

The loop never prints and never touches a GUI: it calls ``on_event`` with these small frozen dataclasses
carrying plain numbers. The CLI turns them into a progress bar; the GUI worker turns them into Qt
signals. Stop and pause are cooperative flags (:class:`TrainingControl`) checked before every batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class StepEvent:
    epoch: int  # 0-based epoch in progress
    batch: int  # batches done in this epoch
    batches_per_epoch: int
    step: int  # global optimiser step, counting from the very first run
    loss: float  # mean loss over the steps since the previous event
    lr: float
    samples_per_second: float


@dataclass(frozen=True)
class EpochEvent:
    epoch: int  # 1-based count of epochs done
    total_epochs: int
    train_loss: float
    test_loss: float
    test_accuracy: float
    seconds: float  # wall time of this epoch, test pass included, pauses excluded
    train_seconds: float  # training time of this run so far: optimiser steps only, no test passes
    train_accuracy: float | None = None  # of the epoch's training batches, as the weights changed over it
    lr: float | None = None  # the learning rate of the epoch's last step


@dataclass(frozen=True)
class FinishedEvent:
    """The last event of a run, and what :meth:`Trainer.run` returns."""

    stopped: bool
    epochs_done: int
    train_seconds: float
    samples_per_second: float
    final_loss: float
    test_accuracy: float | None


@dataclass(frozen=True)
class FailedEvent:
    message: str


@dataclass(frozen=True)
class NoticeEvent:
    """Something the user should know that does not stop the run, such as a slower fallback being taken."""

    message: str


TrainEvent = StepEvent | EpochEvent | FinishedEvent | FailedEvent | NoticeEvent
EventCallback = Callable[[TrainEvent], None]


def fan_out(*callbacks: EventCallback) -> EventCallback:
    """One callback passing each event to every one of ``callbacks``, in order (a run has one ``on_event``)."""

    def on_event(event: TrainEvent) -> None:
        for callback in callbacks:
            callback(event)

    return on_event


class TrainingControl:
    """Stop and pause flags shared between the thread that trains and the one that asks."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # wake a paused loop so it can see the stop

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self) -> float:
        """Block while paused; return the seconds spent waiting."""
        if self._running.is_set():
            return 0.0
        start = time.perf_counter()
        self._running.wait()
        return time.perf_counter() - start


def epochs_text(count: int) -> str:
    """``1 epoch``, ``3 epochs``: how the command line and the window count a run's epochs."""
    return f"{count} epoch{'' if count == 1 else 's'}"
