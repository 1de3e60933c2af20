"""Workers: the only place in the app that starts threads.

Worker signals are connected by :func:`start`, only to ``@Slot`` methods of QObjects living in the GUI
thread, so that Qt queues each call to that thread. A lambda has no thread affinity, so Qt would call it
directly in the worker thread; and a method without ``@Slot`` is added to its class's meta-object only
when connected, which PySide6 advises against ("We recommend marking all methods used by signal
connections with a @QtCore.Slot() decorator"): a plain function put in its place (a test's wrapper,
say) was called in the worker thread here.

Each worker is a ``QObject`` moved to its own ``QThread``. It calls the engine and reports back with
signals carrying plain data (numbers, numpy arrays, frozen dataclasses, CPU copies of weights), which
Qt delivers to the GUI thread as queued calls. Stop, pause and cancel are thread-safe flags the GUI sets
directly; the engine checks them between batches.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QMetaMethod, QObject, Qt, QThread, Signal, Slot


class Worker(QObject):
    """Base: ``run`` is called in the worker thread; ``done`` is always emitted last, once.

    ``intra_op_threads``: PyTorch's OpenMP threads for this worker's thread. Each thread that runs torch
    ops gets its own OpenMP team, and once more OpenMP threads exist than cores, libgomp stops spinning
    between parallel regions and training slows down 1.7x (measured). So only the training worker gets a
    team; every other thread that touches torch (the GUI thread included) runs single-threaded.
    """

    failed = Signal(str)
    done = Signal()
    intra_op_threads = 1  # set in run() by threads_for()
    background = False  # run below the GUI thread's priority (see lower_thread_priority)

    def __init__(self) -> None:
        super().__init__()
        self._cancelled = False
        self.native_thread_id: int | None = None  # of the thread running it, once it runs
        self.lowered_priority = False

    def cancel(self) -> None:
        self._cancelled = True

    def is_cancelled(self) -> bool:
        return self._cancelled

    @Slot()
    def run(self) -> None:
        import torch

        from engine.errors import UserError

        self.native_thread_id = threading.get_native_id()
        # first: the OpenMP threads this thread starts inherit its priority
        self.lowered_priority = self.background and lower_thread_priority()
        self.intra_op_threads = self.threads_for(self.lowered_priority)
        # PyTorch initialises each thread's OpenMP count lazily, at its first parallel region, from the
        # process-wide count that every thread's set_num_threads writes: a worker starting meanwhile (the
        # warm-up, a data load) set it back to 1 and the training ran on one core. get_num_threads runs
        # that initialisation now, so this thread's own count below sticks.
        torch.get_num_threads()
        torch.set_num_threads(self.intra_op_threads)  # per thread with OpenMP
        try:
            self.work()
        except UserError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug: keep the app alive and say what happened
            traceback.print_exc()
            self.failed.emit(f"Internal error: {type(exc).__name__}: {exc}")
        finally:
            # Back to the GUI thread before the end, so that it is destroyed there, when the GUI drops it.
            # Destroyed in this thread (deleteLater), its destructor took Qt's connection lock and waited
            # for the GIL, which the GUI thread held while it waited for that lock: the app froze
            # (tests/test_gui_workers.py).
            application = QCoreApplication.instance()
            if application is not None:
                self.moveToThread(application.thread())
            self.done.emit()

    def threads_for(self, lowered_priority: bool) -> int:
        return 1

    def work(self) -> None:
        raise NotImplementedError


def start(worker: Worker, parent: QObject, **slots: Callable[..., Any]) -> QThread:
    """Connect ``worker``'s signals to ``slots`` (by signal name), then run it in a new thread that quits
    and cleans itself up when the worker is done.

    Each slot must be a ``@Slot`` method of a QObject (see the module docstring); anything else is a
    TypeError, before any thread starts.
    """
    for name, slot in slots.items():
        if not is_declared_slot(slot):
            raise TypeError(
                f"{type(worker).__name__}.{name} must be connected to a @Slot method of a QObject, not {slot!r}"
            )
    for name, slot in slots.items():
        getattr(worker, name).connect(slot)
    thread = QThread(parent)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    # quit() is thread-safe; a direct call lets the GUI thread wait() for the thread right after ``done``
    worker.done.connect(thread.quit, Qt.ConnectionType.DirectConnection)
    thread.start()
    return thread


class Job(QObject):
    """One worker's lifetime, from start to clean-up; at most one worker at a time.

    Every worker of the app runs through a Job (superqt's ``create_worker`` is the pattern): ``start``
    connects the worker's signals and runs it on a new thread; ``cancel`` asks it to stop; ``wait``
    blocks until it has ended (closing the window); ``finished`` comes once its thread has ended and been
    freed, so a slot connected to it may start the next worker. A new worker is its class and one
    ``start`` call; no done-slot is written twice.
    """

    finished = Signal()

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.worker: Any = None
        self._thread: QThread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, worker: Worker, **slots: Callable[..., Any]) -> bool:
        """Run ``worker`` with its signals connected to ``slots`` (see :func:`start`); False, and nothing
        started, while another worker of this job is still running."""
        if self.running:
            return False
        self.worker = worker
        self._thread = start(worker, self, done=self._on_done, **slots)
        return True

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def wait(self) -> None:
        """Block until the worker has ended, then clean up (``finished`` is emitted now)."""
        if self._thread is not None:
            self._thread.wait()
            self._on_done()

    @Slot()
    def _on_done(self) -> None:
        if self._thread is None:  # already cleaned up by wait()
            return
        finish(self._thread)
        self._thread = None
        self.worker = None
        self.finished.emit()


def is_declared_slot(method: Any) -> bool:
    """Whether ``method`` is bound to a QObject whose class declares it as a slot (``@Slot``)."""
    receiver = getattr(method, "__self__", None)
    if not isinstance(receiver, QObject):
        return False
    meta = receiver.metaObject()
    name = getattr(method, "__name__", "").encode()
    return any(
        meta.method(i).methodType() == QMetaMethod.MethodType.Slot and meta.method(i).name().data() == name
        for i in range(meta.methodCount())
    )


BACKGROUND_NICENESS = 10


def lower_thread_priority() -> bool:
    """Lower the calling thread's scheduling priority by ``BACKGROUND_NICENESS`` (Linux only).

    On Linux each thread has its own nice value and threads it creates inherit it, so a training thread
    that lowers its own before its first parallel region gets an OpenMP team that yields to the GUI thread
    too. Elsewhere nice values are per process (macOS) or not inherited by new threads (Windows), so
    nothing is changed there. Returns whether the priority was lowered.
    """
    if not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + BACKGROUND_NICENESS))
    except OSError:
        return False
    return True


def training_threads(low_priority_asked: bool, lowered_priority: bool) -> int:
    """Intra-op threads for training inside the app: every core, but one for the GUI thread where a lower
    priority was asked for and could not be had (macOS and Windows have no per-thread nice values).

    On 2 cores, every core at normal priority trained 7 % faster than at nice +10, with GUI event-loop
    lateness p99 18 ms against 9 ms; one core at normal priority, about half as fast
    (benchmarks/bench_gui.py --niceness; docs/performance.md).
    """
    cores = os.cpu_count() or 2
    return max(1, cores - 1) if low_priority_asked and not lowered_priority else cores


def finish(thread: QThread | None) -> None:
    """After a worker's ``done``: wait for its thread to end (immediate, see ``start``) and free it."""
    if thread is not None:
        thread.wait()
        thread.deleteLater()


class TrainingWorker(Worker):
    """Runs one training run to the end, or until stopped: a new model, or one continuing ``checkpoint``.

    The Trainer is built and lives in the worker thread; the GUI learns of the run only through these
    signals. Step events are batched and sent at most every ``emit_interval`` seconds, so a fast GPU cannot
    flood the GUI thread with signals; every logged loss still arrives. At each completed epoch the model
    comes as a checkpoint of its own (``epoch_model``): the model on hand is always a whole epoch's.
    """

    steps = Signal(object)  # list[StepEvent]
    epoch = Signal(object)  # EpochEvent
    epoch_model = Signal(object)  # engine.checkpoint.Checkpoint of the epoch just completed, CPU copies
    finished = Signal(object)  # FinishedEvent
    saved = Signal(str)  # path of the autosaved checkpoint
    notice = Signal(str)  # NoticeEvent.message: a slower fallback the user should know about
    started_training = Signal(object)  # the run's config, steps per epoch, epochs done, history, device

    def __init__(
        self,
        dataset: Any,
        config: Any,
        checkpoint: Any,
        autosave_path: Path | None,
        emit_interval: float = 0.05,
        low_priority: bool = False,
        runs_store: Path | None = None,
        tensorboard_dir: Path | None = None,
    ) -> None:
        super().__init__()
        from engine.events import TrainingControl

        self.runs_store = runs_store  # where the run is recorded (engine.runs), None: not recorded
        self.tensorboard_dir = tensorboard_dir
        self.background = low_priority  # the user's setting: train below the GUI's priority
        self.dataset = dataset
        self.config = config
        self.checkpoint = checkpoint
        self.autosave_path = autosave_path
        self.control = TrainingControl()
        self.emit_interval = emit_interval
        self._pending: list[Any] = []
        self._last_emit = 0.0

    def threads_for(self, lowered_priority: bool) -> int:
        return training_threads(self.background, lowered_priority)

    def cancel(self) -> None:
        super().cancel()
        self.control.stop()

    def _make_trainer(self) -> Any:
        from engine.checkpoint import resume_trainer
        from engine.training import Trainer

        if self.checkpoint is not None:  # the panel's epochs are "more epochs" when continuing
            return resume_trainer(
                self.checkpoint, self.dataset, more_epochs=self.config.epochs, device=self.config.device
            )
        return Trainer(self.config, self.dataset)

    def work(self) -> None:
        from engine import checkpoint
        from engine.errors import UserError
        from engine.events import EpochEvent, FinishedEvent, NoticeEvent, StepEvent, fan_out

        trainer = self._make_trainer()
        if self.control.stopped:
            return
        self.started_training.emit(
            {
                "config": trainer.config,
                "steps_per_epoch": trainer.steps_per_epoch,
                "epochs_done": trainer.epochs_done,
                "history": trainer.history.to_dict(),
                "device": str(trainer.device),
            }
        )

        def flush() -> None:
            if self._pending:
                self.steps.emit(self._pending)
                self._pending = []
            self._last_emit = time.perf_counter()

        def on_event(event: Any) -> None:
            if isinstance(event, StepEvent):
                self._pending.append(event)
                if time.perf_counter() - self._last_emit >= self.emit_interval:
                    flush()
            elif isinstance(event, EpochEvent):
                flush()
                self.epoch.emit(event)
            elif isinstance(event, NoticeEvent):
                self.notice.emit(event.message)
            elif isinstance(event, FinishedEvent):
                flush()
                self.finished.emit(event)

        sinks = self._sinks(trainer)

        def on_epoch_end(t: Any) -> None:
            payload = checkpoint.trainer_payload(t)
            self.epoch_model.emit(checkpoint.from_payload(payload))
            if self.autosave_path is not None:
                try:
                    checkpoint.save(payload, self.autosave_path)
                except UserError as exc:  # a full disk, say: the run and its model in memory go on
                    self.notice.emit(f"Autosave failed, training goes on (use Save to keep the model): {exc}")
                else:
                    self.saved.emit(str(self.autosave_path))

        try:
            trainer.run(fan_out(on_event, *(sink.on_event for sink in sinks)), self.control, on_epoch_end=on_epoch_end)
        finally:
            for sink in sinks:
                sink.close()

    def _sinks(self, trainer: Any) -> list[Any]:
        """The run's record (engine.runs) and TensorBoard scalars, where asked for: each with ``on_event``
        and ``close``. A problem with either is a notice, never the end of the run."""
        from engine.errors import UserError
        from engine.runs import RunRecorder

        sinks: list[Any] = []
        if self.runs_store is not None:
            sinks.append(
                RunRecorder.for_trainer(
                    self.runs_store,
                    trainer,
                    "app",
                    [self.autosave_path] if self.autosave_path else [],
                    warn=self.notice.emit,
                )
            )
        if self.tensorboard_dir is not None:
            from engine.tensorboard import ScalarWriter

            try:
                sinks.append(ScalarWriter(self.tensorboard_dir, on_failure=self.notice.emit))
            except UserError as exc:
                self.notice.emit(f"No TensorBoard logs for this run: {exc}")
        return sinks


class WarmUpWorker(Worker):
    """Does the first training run's one-off start-up work (``engine.cpu_tuning.warm_up``) in the background,
    and removes what an autosave killed mid-write left behind (engine.files.remove_stale_temporaries)."""

    background = True

    def work(self) -> None:
        from engine.cpu_tuning import warm_up
        from engine.files import remove_stale_temporaries
        from gui.autosave import autosave_dir

        remove_stale_temporaries(autosave_dir())
        warm_up()


class ExportWorker(Worker):
    """Exports a model (:func:`engine.export.export`) off the GUI thread: torch.export and ONNX take
    0.5-1.5 s on a 2-core CPU, a frozen window otherwise."""

    exported = Signal(str, str)  # format, path written

    def __init__(self, checkpoint: Any, fmt: str, path: str) -> None:
        super().__init__()
        self.checkpoint = checkpoint
        self.fmt = fmt
        self.path = path

    def work(self) -> None:
        from engine.export import export

        written = export(self.checkpoint, self.fmt, self.path)
        self.exported.emit(self.fmt, str(written))


class CheckpointWorker(Worker):
    """Opens and validates a checkpoint off the GUI thread: a file at the size limits (a long history,
    the widest model) takes a second or more to check, which must not freeze the window."""

    loaded = Signal(object)  # engine.checkpoint.Checkpoint, its model handed over to the GUI thread

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def work(self) -> None:
        from engine import checkpoint

        self.loaded.emit(checkpoint.load(self.path))


class TeachWorker(Worker):
    """Teaches a model the personal samples (engine.teaching) off the GUI thread: the base is the checkpoint
    given, or the bundled model when there is none (the model on hand has no checkpoint). The taught model
    is autosaved to ``autosave_path`` as a run's epoch is, so a crash before Save loses nothing."""

    taught = Signal(object, object)  # the taught engine.checkpoint.Checkpoint, its engine.teaching.TeachResult
    saved = Signal(str)  # where the taught model was autosaved
    notice = Signal(str)

    def __init__(self, base: Any, folder: Path, autosave_path: Path | None = None) -> None:
        super().__init__()
        self.base = base
        self.folder = folder
        self.autosave_path = autosave_path

    def work(self) -> None:
        from engine import checkpoint
        from engine.errors import UserError
        from engine.inference import BUNDLED_MODEL
        from engine.teaching import load_samples, replay_for, teach

        base = self.base if self.base is not None else checkpoint.load(BUNDLED_MODEL)
        samples = load_samples(self.folder, base.class_names)
        replay, note = replay_for(base)
        if note:
            self.notice.emit(note)
        result = teach(base, samples, replay, base_name=base.display_name)
        self.taught.emit(checkpoint.from_payload(result.payload), result)
        if self.autosave_path is not None:
            try:
                self.saved.emit(str(checkpoint.save(result.payload, self.autosave_path)))
            except UserError as exc:  # a full disk, say: the taught model on hand stays
                self.notice.emit(f"The taught model could not be autosaved (use Save to keep it): {exc}")


class DatasetWorker(Worker):
    """Loads a data set (downloading it when needed) with byte progress and cancel. A known set that
    cannot be downloaded (offline, say) is replaced by its fallback, the built-in sample, with a notice."""

    progress = Signal(int, int)
    loaded = Signal(object)  # engine.data.Dataset
    fell_back = Signal(str, str)  # the fallback's key, why the set asked for could not be had
    cancelled = Signal()

    def __init__(self, name: str, folder: str | None) -> None:
        super().__init__()
        self.name = name
        self.folder = folder

    def work(self) -> None:
        from engine import data
        from engine.errors import DownloadCancelled

        try:
            if self.folder is not None:
                dataset = data.load_folder(self.folder)
            else:
                dataset, why = data.resolve_or_fallback(self.name, self.progress.emit, self.is_cancelled)
                if why is not None:
                    self.fell_back.emit(dataset.name, why)
        except DownloadCancelled:
            self.cancelled.emit()
            return
        self.loaded.emit(dataset)


class EvaluationWorker(Worker):
    """Evaluates a model (a CPU copy the worker owns) on a test split, with progress."""

    progress = Signal(int, int)
    result = Signal(object)  # engine.evaluation.EvaluationResult

    def __init__(self, model: Any, split: Any, normalization: Any, num_classes: int, device: str = "cpu") -> None:
        super().__init__()
        self.model = model
        self.split = split
        self.normalization = normalization
        self.num_classes = num_classes
        self.device = device

    def work(self) -> None:
        from engine.evaluation import evaluate

        model = self.model.to(self.device)
        try:
            result = evaluate(
                model,
                self.split,
                self.normalization,
                self.device,
                batch_size=500,
                num_classes=self.num_classes,
                progress=self.progress.emit,
                cancelled=self.is_cancelled,
            )
        except InterruptedError:
            return
        self.result.emit(result)


class RunStoreWorker(Worker):
    """Runs one task on the run store (engine.runs) off the GUI thread: its records and logged steps are
    files anyone may have put there (a FIFO, a link to a device, a slow disk), and the window must not
    wait on them."""

    result = Signal(object)  # what the task returned

    def __init__(self, task: Callable[[], Any]) -> None:
        super().__init__()
        self.task = task

    def work(self) -> None:
        self.result.emit(self.task())
