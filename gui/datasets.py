"""The data sets the app has loaded, and the one worker that loads (or downloads) the chosen one.

:class:`DatasetLoader` is their only owner: the training panel says which set is chosen (``choose``), and
whoever needs it (Train, Evaluate, the Data tab) asks ``ensure`` and is called back with it once it is
loaded. A loaded set is kept, so the next run starts at once. Views get the loader, never the window.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from engine.data import DATASETS, cache_dir, locate, split_files
from gui.workers import DatasetWorker, Job

Key = tuple[str, "str | None"]  # (data set name, folder or None)


class DatasetLoader(QObject):
    """Owns the loaded data sets and the data-set worker; says what it does through signals."""

    loaded = Signal(object)  # engine.data.Dataset, each time one has been loaded
    progress = Signal(int, int)  # bytes downloaded, bytes expected
    status = Signal(str)  # where the chosen set is or will come from, or what happened to it
    notice = Signal(str)  # what the loader is doing, for the status line
    failed = Signal(str)  # why the chosen set could not be loaded
    busy = Signal(bool)  # loading or downloading (a progress bar and Cancel are shown meanwhile)
    fell_back = Signal(str, str)  # the built-in set used instead of the one chosen, and why

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.datasets: dict[Key, Any] = {}
        self.choice: Key = ("mnist", None)
        self.job = Job(self)
        self.job.finished.connect(self._on_done)
        self._waiting: list[tuple[Callable[[Any], None], Callable[[], None] | None]] = []
        self._loading: Key | None = None
        self._closed = False

    # -- the choice -----------------------------------------------------------------------------------------
    def choose(self, name: str, folder: str | None) -> None:
        """The set that ``ensure`` loads from now on; says where it will come from (nothing is loaded yet)."""
        self.choice = (name, folder)
        self.status.emit(self.describe_choice())

    def describe_choice(self) -> str:
        """Where the chosen set is, so that a download (or a missing set) is no surprise when Train is pressed."""
        name, folder = self.choice
        dataset = self.datasets.get(self.choice)
        if dataset is not None:
            return describe(dataset)
        if folder is not None:
            return f"Loaded from {folder} when training starts"
        spec = DATASETS.get(name)
        if spec is not None and spec.bundled is not None:
            return "Built into the app: 10,000 training and 10,000 test images; no download needed"
        found = locate(name)
        return (
            f"Found in {found}\nloaded when training starts"
            if found is not None
            else f"Not on this computer yet: downloaded into {cache_dir() / name} when training starts"
        )

    def chosen(self) -> Any:
        """The chosen set if it is loaded, else None."""
        return self.datasets.get(self.choice)

    # -- loading --------------------------------------------------------------------------------------------
    @property
    def loading(self) -> bool:
        return self._loading is not None

    def ensure(self, then: Callable[[Any], None], on_fail: Callable[[], None] | None = None) -> None:
        """Call ``then(dataset)`` with the chosen set, loading it on the worker first if needed; ``on_fail()``
        instead when loading fails, is cancelled, or another set is still loading."""
        dataset = self.chosen()
        if dataset is not None:
            then(dataset)
            return
        if self._closed:
            return
        if self._loading is not None and self._loading != self.choice:
            self.notice.emit(f"Still loading {self._loading[0]}; try again when it is loaded")
            if on_fail is not None:
                on_fail()
            return
        self._waiting.append((then, on_fail))
        if self._loading is not None:  # the same set is already on its way
            return
        self._loading = name, folder = self.choice
        self.job.start(
            DatasetWorker(name, folder),
            progress=self._on_progress,
            loaded=self._on_loaded,
            failed=self._on_failed,
            cancelled=self._on_cancelled,
            fell_back=self._on_fell_back,
        )
        self.busy.emit(True)
        self.status.emit("Loading data set...")
        self.notice.emit(f"Loading {name}...")

    def cancel(self) -> None:
        self.job.cancel()

    def shutdown(self) -> None:
        """Nobody waits any more (the window is closing): cancel and wait for the worker."""
        self._closed = True
        self._waiting.clear()
        self.job.cancel()
        self.job.wait()

    def files(self) -> list[Path]:
        """The IDX files of every loaded set: no save or export may be written over them."""
        return [file for dataset in self.datasets.values() for file in split_files(Path(dataset.folder))]

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        self.progress.emit(done, total)

    @Slot(object)
    def _on_loaded(self, dataset: Any) -> None:
        if self._closed:  # queued before the window closed: nobody waits for it any more
            return
        self.datasets[self._loading] = dataset
        self.status.emit(describe(dataset))
        self.notice.emit(f"Loaded {dataset.name} from {dataset.folder}")
        waiting, self._waiting = self._waiting, []
        self.loaded.emit(dataset)
        for then, _ in waiting:
            then(dataset)

    @Slot(str, str)
    def _on_fell_back(self, key: str, reason: str) -> None:
        """The set asked for could not be had: what the worker loads next is ``key``'s, which becomes the
        choice (``choose`` follows when the panel shows it)."""
        self._loading = self.choice = (key, None)
        self.fell_back.emit(key, reason)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.status.emit(message)
        self.failed.emit(message)

    @Slot()
    def _on_cancelled(self) -> None:
        self.status.emit("Download cancelled")
        self.notice.emit("Download cancelled")

    @Slot()
    def _on_done(self) -> None:
        self._loading = None
        waiting, self._waiting = self._waiting, []
        for _, on_fail in waiting:  # still waiting: loading failed or was cancelled
            if on_fail is not None:
                on_fail()
        self.busy.emit(False)


def describe(dataset: Any) -> str:
    return f"{dataset.name}: {len(dataset.train):,} training / {len(dataset.test):,} test images\n{dataset.folder}"
