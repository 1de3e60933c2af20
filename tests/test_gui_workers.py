"""Starting workers: signals reach only declared slots, which Qt runs on the receiver's (GUI) thread."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QObject, Slot

from gui.workers import Worker, finish, is_declared_slot, start


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


def test_a_finished_worker_belongs_to_the_gui_thread_and_is_destroyed_there(qtbot) -> None:
    """Destroyed in its own thread, a worker's destructor waited for the GIL while holding Qt's connection
    lock, and the GUI thread, holding the GIL, waited for that lock: the app froze."""
    from PySide6.QtWidgets import QApplication

    receiver = _Receiver()
    worker = _Echo()
    destroyed: list[str] = []
    worker.destroyed.connect(lambda: destroyed.append(threading.current_thread().name))
    thread = start(worker, receiver, failed=receiver.on_failed, done=receiver.on_done)
    qtbot.waitUntil(lambda: len(receiver.calls) == 2, timeout=5000)
    finish(thread)
    assert worker.thread() is QApplication.instance().thread()
    del worker
    qtbot.waitUntil(lambda: bool(destroyed), timeout=5000)
    assert destroyed == [threading.main_thread().name]


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


@pytest.mark.parametrize("stop_at_step", [1, 13])  # in the first epoch (10 steps), and in the second
def test_a_stopped_run_hands_over_only_completed_epochs_the_same_as_it_saves(
    tiny_dataset, tmp_path, stop_at_step: int
) -> None:
    """The model on hand after Stop (canvas, Evaluate) is the last completed epoch, the one autosaved."""
    import torch

    from engine import checkpoint
    from engine.config import TrainConfig
    from gui.workers import TrainingWorker

    config = TrainConfig(model="lenet", epochs=3, batch_size=32, device="cpu", log_every=1)
    worker = TrainingWorker(tiny_dataset, config, None, tmp_path / "auto.pt")
    models = []
    worker.epoch_model.connect(models.append)
    worker.steps.connect(lambda events: worker.cancel() if events[-1].step >= stop_at_step else None)
    worker.emit_interval = 0.0
    worker.work()  # in this thread: the signals reach the lambdas directly
    assert [m.epochs_done for m in models] == ([] if stop_at_step < 10 else [1])
    if models:
        saved = checkpoint.load(tmp_path / "auto.pt")
        for name, value in saved.model.state_dict().items():
            torch.testing.assert_close(models[-1].model.state_dict()[name], value, rtol=0, atol=0)
