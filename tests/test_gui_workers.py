"""Starting workers: signals reach only declared slots, which Qt runs on the receiver's (GUI) thread."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QObject, Slot

from gui.workers import Worker, finish, is_declared_slot, snapshot_progress, start


class _Echo(Worker):
    def work(self) -> None:
        self.failed.emit(threading.current_thread().name)


class _Receiver(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    @Slot(str)
    def on_failed(self, sender_thread: str) -> None:
        self.calls.append((sender_thread, threading.current_thread().name))

    @Slot()
    def on_done(self) -> None:
        self.calls.append(("done", threading.current_thread().name))

    def undecorated(self, message: str) -> None:
        self.calls.append((message, threading.current_thread().name))


def test_worker_signals_run_their_slots_on_the_gui_thread(qtbot) -> None:
    receiver = _Receiver()
    worker = _Echo()
    thread = start(worker, receiver, failed=receiver.on_failed, done=receiver.on_done)
    qtbot.waitUntil(lambda: len(receiver.calls) == 2, timeout=5000)
    finish(thread)
    (sender, ran_in), done = receiver.calls
    assert sender != threading.main_thread().name  # emitted in the worker's thread...
    assert ran_in == threading.main_thread().name  # ...and run in the GUI thread
    assert done == ("done", threading.main_thread().name)


@pytest.mark.parametrize("slot", [lambda message: None, print, "undecorated"])
def test_anything_but_a_declared_slot_is_refused_before_a_thread_starts(qtbot, slot) -> None:
    receiver = _Receiver()
    slot = getattr(receiver, slot) if isinstance(slot, str) else slot
    assert not is_declared_slot(slot)
    worker = _Echo()
    with pytest.raises(TypeError, match=r"_Echo\.failed must be connected to a @Slot method"):
        start(worker, receiver, failed=slot)
    assert worker.native_thread_id is None  # it never ran



class _CountsThreads(Worker):
    """Holds its work until told to go, then notes how many OpenMP threads its thread's torch ops use."""

    def __init__(self) -> None:
        super().__init__()
        self.ready, self.go = threading.Event(), threading.Event()
        self.seen: int | None = None

    def threads_for(self, lowered_priority: bool) -> int:
        return 2

    def work(self) -> None:
        import torch

        self.ready.set()
        self.go.wait(10)
        self.seen = torch.get_num_threads()


def test_a_workers_thread_count_survives_another_thread_setting_its_own(qtbot) -> None:
    """The warm-up or a data load starting while training starts set PyTorch's process-wide count to 1,
    and the training thread, initialised lazily from it, then trained on one core."""
    import torch

    receiver = _Receiver()
    worker = _CountsThreads()
    before = torch.get_num_threads()
    thread = start(worker, receiver, done=receiver.on_done)
    try:
        assert worker.ready.wait(10)
        torch.set_num_threads(1)  # what every other worker (and the GUI thread) does for itself
        worker.go.set()
        qtbot.waitUntil(lambda: receiver.calls == [("done", threading.main_thread().name)], timeout=5000)
    finally:
        worker.go.set()
        finish(thread)
        torch.set_num_threads(before)
    assert worker.seen == worker.intra_op_threads == 2


@pytest.mark.parametrize(("done", "planned", "stopped", "text"), [
    (2, 3, None, "2 of 3 epochs"),
    (1, 1, None, "1 of 1 epoch"),
    (3, 3, False, "3 epochs"),
    (1, 3, False, "1 epoch"),
    (0, 3, True, "stopped in epoch 1"),
])
def test_a_training_runs_model_says_how_far_it_has_trained(done, planned, stopped, text) -> None:
    assert snapshot_progress(done, planned, stopped) == text


@pytest.mark.parametrize(("stop_when", "label"), [
    ("epoch_end", "training run (lenet, 1 epoch)"),  # the next epoch had not taken a step: the model is epoch 1's
    ("first_step", "training run (lenet, stopped in epoch 1)"),
])
def test_a_stopped_runs_model_is_labelled_by_where_it_stopped(tiny_dataset, stop_when: str, label: str) -> None:
    from engine.training import StepEvent, TrainConfig, Trainer, TrainingControl
    from gui.workers import TrainingWorker

    control = TrainingControl()
    trainer = Trainer(TrainConfig(model="lenet", epochs=3, batch_size=32, device="cpu", log_every=1), tiny_dataset)
    on_epoch_end = (lambda _: control.stop()) if stop_when == "epoch_end" else None

    def on_event(event) -> None:
        if stop_when == "first_step" and isinstance(event, StepEvent):
            control.stop()

    result = trainer.run(on_event, control, on_epoch_end=on_epoch_end)
    assert result.stopped
    assert TrainingWorker._snapshot(trainer, stopped=True).label == label
