"""The main window: training on the left, plots and evaluation in the middle, recognition on the right.

The window owns the app's state (the data sets loaded, the loaded checkpoint, the model answering on
the canvas, the running worker) and wires the panels to the engine. It adds no engine logic of its
own: training, checkpoints, evaluation and preprocessing are all engine calls.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QEvent, QObject, QSettings, QSize, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QIcon, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QWidget,
)

from engine import checkpoint as ckpt
from engine.data import DATASETS, cache_dir, locate, split_files
from engine.devices import list_devices
from engine.errors import UserError
from engine.files import check_output
from engine.inference import Predictor, load_bundled
from engine.training import EpochEvent, FinishedEvent, Trainer, epochs_text
from gui.autosave import MAX_KEPT, autosave_dir, new_autosave_path, prune
from gui.dataset_browser import DatasetBrowser
from gui.draw_canvas import dropped_file
from gui.evaluation_view import EvaluationView
from gui.garbage_collection import GuiThreadGarbageCollector
from gui.loss_plot import TrainingPlots
from gui.prediction_panel import RecognitionPanel
from gui.settings import ask_export_path, settings_list
from gui.training_panel import TrainingPanel
from gui.workers import (
    CheckpointWorker,
    DatasetWorker,
    ExportWorker,
    ModelSnapshot,
    TrainingWorker,
    WarmUpWorker,
    finish,
    start,
)

APP_NAME = "Digit Studio"
APP_ICON = Path(__file__).resolve().parents[1] / "resources" / "icons" / "digit-studio.svg"
MAX_RECENT = 8
WARM_UP_DELAY_MS = 300  # after the window is shown: its first layout and paint come first
DEFAULT_SIZE = QSize(1440, 860)
# room on the screen's available area for the window manager's frame and title bar
FRAME_ALLOWANCE = QSize(16, 48)
CHECKPOINT_SUFFIXES = (".pt", ".pth")  # what a dropped file must be called to be opened as a checkpoint
NOTHING_TO_SAVE = "Nothing to save yet: train a model (one epoch at least) or open one."


class MainWindow(QMainWindow):
    """Build it with a QApplication present; ``show()`` gives the full app without entering the loop."""

    # Re-emitted on the GUI thread for observers (tests, automation): connect to these, never to the
    # workers' signals with a lambda, which would run in the worker thread.
    dataset_loaded = Signal(object)
    download_progress = Signal(int, int)
    training_steps = Signal(object)  # list[StepEvent]
    training_epoch = Signal(object)  # EpochEvent
    training_finished = Signal(object)  # FinishedEvent, or None when a run failed
    checkpoint_opened = Signal(bool)  # whether the last open_checkpoint ended with the model on hand

    def __init__(self, settings: QSettings | None = None) -> None:
        super().__init__()
        import torch

        torch.set_num_threads(1)  # the GUI thread only runs tiny models; see gui.workers.Worker
        # Workers allocate a lot; a cyclic collection they trigger must never destroy Qt objects there.
        self.garbage_collector = GuiThreadGarbageCollector(self)
        self.garbage_collector.start()
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(QIcon(str(APP_ICON)))  # the title bar's, the task bar's and the window switcher's
        self.setObjectName("mainWindow")
        self.settings = settings or QSettings("DigitStudio", "Digit Studio")
        self.devices = list_devices()
        self.datasets: dict[tuple[str, str | None], Any] = {}
        self.checkpoint: ckpt.Checkpoint | None = None
        self.trainer: Trainer | None = None
        self.snapshot: ModelSnapshot | None = None
        self.training_worker: TrainingWorker | None = None
        self.training_thread: QThread | None = None
        self.dataset_worker: DatasetWorker | None = None
        self.dataset_thread: QThread | None = None
        self.warm_up_worker: WarmUpWorker | None = None
        self.warm_up_thread: QThread | None = None
        self.export_worker: ExportWorker | None = None
        self.export_thread: QThread | None = None
        self.checkpoint_worker: CheckpointWorker | None = None
        self.checkpoint_thread: QThread | None = None
        self._warm_up_scheduled = False
        self.last_error: str | None = None
        # The file the model on hand was opened from or last saved to: Save writes there. A new run has
        # none (Save asks for a name), so that it never overwrites another model's file.
        self.model_file: Path | None = None
        self._after_dataset: list[Any] = []
        self.autosave_path: Path | None = None
        self._steps_per_epoch = 1
        self._total_epochs = 1
        self._eta_rate = 0.0

        self.training_panel = TrainingPanel(self.devices)
        self.plots = TrainingPlots()
        self.recognition = RecognitionPanel()
        self.evaluation = EvaluationView(self)
        self.browser = DatasetBrowser(self)
        scroll = QScrollArea()
        scroll.setWidget(self.training_panel)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(self.training_panel.minimumSizeHint().width() + 24)
        self.tabs = QTabWidget(objectName="centerTabs")
        self.tabs.addTab(self.plots, "Training")
        self.tabs.addTab(self.evaluation, "Evaluate")
        self.tabs.addTab(self.browser, "Data")
        splitter = QSplitter(Qt.Orientation.Horizontal, objectName="mainSplitter")
        splitter.addWidget(scroll)
        splitter.addWidget(self.tabs)
        splitter.addWidget(self.recognition)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 3)
        splitter.setStretchFactor(2, 2)
        splitter.setSizes([380, 620, 440])
        self.setCentralWidget(splitter)

        self.status_label = QLabel("Ready", objectName="statusMessage")
        self.speed_label = QLabel("", objectName="statusSpeed")
        self.device_label = QLabel("", objectName="statusDevice")
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.speed_label)
        self.statusBar().addPermanentWidget(self.device_label)

        self._build_menus()
        self._connect()
        self._restore_settings()
        self._load_bundled_model()
        self._update_device_label()
        self._describe_dataset_choice()

    # ------------------------------------------------------------------------------------------ start-up
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._warm_up_scheduled:  # once the window is up: it must not wait for this
            self._warm_up_scheduled = True
            QTimer.singleShot(WARM_UP_DELAY_MS, self, self._warm_up)

    @Slot()
    def _warm_up(self) -> None:
        """The first training run's one-off start-up work, in the background (engine.training.warm_up).

        Collections are held meanwhile, and the objects it creates (and the rest of start-up's) are then
        frozen out of later collections: see gui.garbage_collection.
        """
        if not self.isVisible():  # closed before the timer fired
            return
        self.garbage_collector.hold()
        self.warm_up_worker = worker = WarmUpWorker()  # referenced until done, or Python would delete it
        self.warm_up_thread = start(worker, self, failed=self.show_status, done=self._on_warm_up_done)

    @Slot()
    def _on_warm_up_done(self) -> None:
        finish(self.warm_up_thread)
        self.warm_up_thread = self.warm_up_worker = None
        self.garbage_collector.freeze()

    # ------------------------------------------------------------------------------------------ construction
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_action = self._action(file_menu, "&Open checkpoint...", QKeySequence.StandardKey.Open,
                                        self.open_checkpoint_dialog, "openCheckpointAction")
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.setObjectName("recentMenu")
        self.recent_menu.aboutToShow.connect(self._refresh_recent_menu)
        self.save_action = self._action(file_menu, "&Save checkpoint", QKeySequence.StandardKey.Save,
                                        self.save_checkpoint, "saveCheckpointAction")
        self.save_as_action = self._action(file_menu, "Save checkpoint &as...", QKeySequence.StandardKey.SaveAs,
                                           self.save_checkpoint_as, "saveAsCheckpointAction")
        file_menu.addSeparator()
        self._action(file_menu, "Open &image...", None, self.open_image_dialog, "openImageAction")
        self.open_data_folder_action = self._action(file_menu, "Open data &folder...", None,
                                                    self.open_data_folder_dialog, "openDataFolderAction")
        self._action(file_menu, "&Export model...", None, self.export_dialog, "exportAction")
        self._action(file_menu, "Export training &curves...", None, self.export_curves_dialog, "exportCurvesAction")
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", QKeySequence.StandardKey.Quit, self.close, "quitAction")
        # The run's buttons, from the menu and the keyboard too: each action clicks its button, and is
        # enabled exactly when the button is.
        panel = self.training_panel
        run_menu = self.menuBar().addMenu("&Training")
        run_menu.setObjectName("trainingMenu")
        run_actions = {
            self._action(run_menu, "&Train", QKeySequence("Ctrl+Return"), panel.train_button.click,
                         "trainAction"): panel.train_button,
            self._action(run_menu, "&Pause / Resume", QKeySequence("Ctrl+P"), panel.pause_button.click,
                         "pauseAction"): panel.pause_button,
            self._action(run_menu, "&Stop", QKeySequence("Ctrl+."), panel.stop_button.click,
                         "stopAction"): panel.stop_button,
            self._action(run_menu, "&Evaluate on the test set", QKeySequence("Ctrl+E"), self._evaluate_from_menu,
                         "evaluateAction"): self.evaluation.evaluate_button,
        }
        for action, button in run_actions.items():
            EnabledMirror(action, button)
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&About Digit Studio", None, self.show_about, "aboutAction")
        self._refresh_recent_menu()

    def _evaluate_from_menu(self) -> None:
        self.tabs.setCurrentWidget(self.evaluation)  # where the result will show
        self.evaluation.evaluate_button.click()

    def _action(self, menu: Any, text: str, shortcut: Any, slot: Any, name: str) -> QAction:
        action = QAction(text, self)
        action.setObjectName(name)
        if shortcut is not None:
            action.setShortcut(shortcut)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _connect(self) -> None:
        panel = self.training_panel
        panel.train_requested.connect(self.start_training)
        panel.pause_toggled.connect(self.set_paused)
        panel.stop_requested.connect(self.stop_training)
        panel.open_folder_requested.connect(self.open_data_folder_dialog)
        panel.download_cancel_requested.connect(self.cancel_download)
        panel.dataset_changed.connect(self._describe_dataset_choice)
        panel.device_combo.currentIndexChanged.connect(lambda _: self._update_device_label())
        self.recognition.open_image_requested.connect(self.open_image_dialog)
        self.recognition.message.connect(self.show_status)
        # A checkpoint file dropped anywhere opens: Qt offers a drag to the innermost widget that takes
        # drops, then to its parents while refused, and the canvas, plots and lists refuse checkpoints.
        self.setAcceptDrops(True)

    # ------------------------------------------------------------------------------------------ messages
    @Slot(str)
    def show_status(self, text: str) -> None:
        self.status_label.setText(text)

    def show_error(self, title: str, message: str) -> None:
        """Errors from the engine: a dialog (and the status bar); the app keeps running."""
        self.last_error = message
        self.show_status(message)
        QMessageBox.warning(self, title, message)

    def confirm(self, title: str, question: str) -> bool:
        answer = QMessageBox.question(self, title, question,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _update_device_label(self, note: str = "") -> None:
        """The chosen device; a training notice about it stays here, as the tooltip, until the next run."""
        self.device_label.setText(f"Device: {self.training_panel.device()}" + (" (see note)" if note else ""))
        self.device_label.setToolTip(note)

    # ------------------------------------------------------------------------------------------ models
    def _load_bundled_model(self) -> None:
        try:
            self.recognition.set_predictor(load_bundled())
        except UserError as exc:
            self.show_status(f"No default model: {exc}")

    def current_model_description(self) -> str:
        return self.recognition.predictor.source if self.recognition.predictor else "no model"

    def set_predictor(self, predictor: Predictor) -> None:
        self.recognition.set_predictor(predictor)
        self.evaluation.model_changed(predictor.source)

    # ------------------------------------------------------------------------------------------ data sets
    def ensure_dataset(self, then: Any, on_fail: Any = None) -> None:
        """Call ``then(dataset)`` with the chosen data set, loading or downloading it on a worker first;
        ``on_fail()`` runs instead when loading fails or is cancelled."""
        name, folder = self.training_panel.dataset_choice()
        key = (name, folder)
        if key in self.datasets:
            then(self.datasets[key])
            return
        loading = self.dataset_worker
        if loading is not None and (loading.name, loading.folder) != key:  # another set is loading
            self.show_status(f"Still loading {loading.name}; try again when it is loaded")
            if on_fail is not None:
                on_fail()
            return
        self._after_dataset.append((then, on_fail))
        if loading is not None:  # the same set is already on its way
            return
        self.training_panel.show_download(True)
        self.training_panel.dataset_status.setText("Loading data set...")
        self.dataset_worker = worker = DatasetWorker(name, folder)
        self.dataset_thread = start(worker, self, progress=self._on_download_progress, loaded=self._on_dataset_loaded,
                                    failed=self._on_dataset_failed, cancelled=self._on_dataset_cancelled,
                                    done=self._on_dataset_done)
        self.show_status(f"Loading {name}...")

    @Slot()
    def _describe_dataset_choice(self) -> None:
        """Say before Train is pressed where the chosen data set will come from, so that a download (or
        a data set that is missing) is no surprise. Only looks for files: loading waits for Train."""
        name, folder = self.training_panel.dataset_choice()
        dataset = self.datasets.get((name, folder))
        if dataset is not None:
            text = _describe(dataset)
        elif folder is not None:
            text = f"Loaded from {folder} when training starts"
        else:
            found = locate(name)
            text = (f"Found in {found}\nloaded when training starts" if found is not None else
                    f"Not on this computer yet: downloaded into {cache_dir() / name} when training starts")
        self.training_panel.dataset_status.setText(text)

    @Slot(int, int)
    def _on_download_progress(self, done: int, total: int) -> None:
        bar = self.training_panel.download_progress
        if total > 0:
            bar.setRange(0, 1000)
            bar.setValue(int(1000 * done / total))
            bar.setFormat(f"Downloading {done / 2**20:.1f} / {total / 2**20:.1f} MB")
        self.download_progress.emit(done, total)

    @Slot(object)
    def _on_dataset_loaded(self, dataset: Any) -> None:
        self.datasets[(self.dataset_worker.name, self.dataset_worker.folder)] = dataset
        self.training_panel.dataset_status.setText(_describe(dataset))
        self.show_status(f"Loaded {dataset.name} from {dataset.folder}")
        callbacks, self._after_dataset = self._after_dataset, []
        self.dataset_loaded.emit(dataset)
        for then, _ in callbacks:
            then(dataset)

    @Slot(str)
    def _on_dataset_failed(self, message: str) -> None:
        self.training_panel.dataset_status.setText(message)
        self.show_error("Data set", message)

    @Slot()
    def _on_dataset_cancelled(self) -> None:
        self.training_panel.dataset_status.setText("Download cancelled")
        self.show_status("Download cancelled")

    @Slot()
    def _on_dataset_done(self) -> None:
        callbacks, self._after_dataset = self._after_dataset, []
        for _, on_fail in callbacks:  # still waiting: loading failed or was cancelled
            if on_fail is not None:
                on_fail()
        self.training_panel.show_download(False)
        self.dataset_worker = None
        finish(self.dataset_thread)
        self.dataset_thread = None

    def cancel_download(self) -> None:
        if self.dataset_worker is not None:
            self.dataset_worker.cancel()

    def open_data_folder_dialog(self) -> None:
        start_dir = str(self.settings.value("paths/data", str(Path.home())))
        folder = QFileDialog.getExistingDirectory(self, "Open data set folder (IDX files)", start_dir)
        if folder:
            self.settings.setValue("paths/data", folder)
            self.training_panel.add_folder(folder)

    # ------------------------------------------------------------------------------------------ training
    @property
    def is_training(self) -> bool:
        return self.training_thread is not None

    def start_training(self) -> None:
        if self.is_training:
            return
        try:
            config = self.training_panel.config()
        except UserError as exc:
            self.show_error("Training settings", str(exc))
            return
        resume = self._resume_source() if self.training_panel.resume_check.isChecked() else None
        self._set_running(True)
        self.training_panel.progress.setFormat("loading data...")
        self.ensure_dataset(lambda dataset: self._start_worker(dataset, config, resume),
                            on_fail=lambda: self._set_running(False))

    def _set_running(self, running: bool) -> None:
        """Lock what would change a run's data or model under it, from Train until the run has ended: the
        training panel's settings, and opening a checkpoint or a data folder (a checkpoint opened mid-run
        replaced the live curves with its own history and lost the run's batch size for the ETA)."""
        self.training_panel.set_running(running)
        self.open_action.setEnabled(not running)
        self.open_data_folder_action.setEnabled(not running)
        self._refresh_recent_menu()

    def _trained_run(self) -> Trainer | None:
        """The last run, once it has completed an epoch: then its model is the one on hand, which Save
        saves and Continue continues, rather than the checkpoint opened before it."""
        return self.trainer if self.trainer is not None and self.trainer.epochs_done > 0 else None

    def _resume_source(self) -> ckpt.Checkpoint | None:
        """What Continue continues: the model on hand, as Save saves it (the last run's last completed
        epoch, or else the checkpoint opened)."""
        trainer = self._trained_run()
        return ckpt.from_payload(ckpt.trainer_payload(trainer)) if trainer is not None else self.checkpoint

    def _start_worker(self, dataset: Any, config: Any, checkpoint: ckpt.Checkpoint | None) -> None:
        if checkpoint is None:  # a new model: Save must not write over the file of the one before
            self.model_file = None
            self.setWindowModified(False)
        extra_epochs = config.epochs

        def make_trainer() -> Trainer:
            if checkpoint is not None:
                return ckpt.resume_trainer(checkpoint, dataset, more_epochs=extra_epochs, device=config.device)
            return Trainer(config, dataset)

        self._update_device_label()  # clears a previous run's note
        self.autosave_path = self._new_autosave_path(config.model, dataset.name)
        self.training_worker = worker = TrainingWorker(make_trainer, self.autosave_path)
        self.training_thread = start(
            worker, self, started_training=self._on_training_started, steps=self._on_steps, epoch=self._on_epoch,
            snapshot=self._on_snapshot, saved=self._on_autosaved, notice=self._on_training_notice,
            finished=self._on_finished, failed=self._on_training_failed, done=self._on_training_done)
        self.show_status("Preparing training...")

    def _new_autosave_path(self, model: str, dataset: str) -> Path | None:
        """This run's autosave file, after making room for it; None (and a note) when the folder is unusable."""
        folder = autosave_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._on_training_notice(f"No autosaves for this run: cannot create {folder} ({exc.strerror or exc})")
            return None
        in_use = [self.checkpoint.path] if self.checkpoint is not None and self.checkpoint.path else []
        prune(folder, keep=MAX_KEPT - 1, protect=[*in_use, *map(Path, self._recent())])  # room for this run's
        return new_autosave_path(folder, model, dataset)

    @Slot(object)
    def _on_training_started(self, info: dict) -> None:
        self.trainer = self.training_worker.trainer if self.training_worker else None
        self._update_title()  # a new run's model has no file yet
        self._steps_per_epoch = info["steps_per_epoch"]
        self._total_epochs = info["config"].epochs
        self.plots.load_history(info["history"], self._steps_per_epoch)
        self.training_panel.progress.setRange(0, self._total_epochs * self._steps_per_epoch)
        self.training_panel.progress.setValue(info["epochs_done"] * self._steps_per_epoch)
        self._eta_rate = 0.0
        self.tabs.setCurrentWidget(self.plots)
        self.show_status(f"Training {info['config'].model} on {info['device']}")

    @Slot(object)
    def _on_steps(self, events: list) -> None:
        self.plots.add_losses([e.step for e in events], [e.loss for e in events])
        last = events[-1]
        bar = self.training_panel.progress
        bar.setValue(last.step)
        bar.setFormat(f"epoch {last.epoch + 1}/{self._total_epochs}  batch {last.batch}/{last.batches_per_epoch}")
        remaining_steps = self._total_epochs * self._steps_per_epoch - last.step
        batch_size = self.trainer.config.batch_size if self.trainer else 1
        eta = remaining_steps * batch_size / max(last.samples_per_second, 1e-9)
        self.speed_label.setText(f"{last.samples_per_second:,.0f} samples/s  ETA {_duration(eta)}  "
                                 f"loss {last.loss:.4f}")
        self.training_steps.emit(events)

    @Slot(object)
    def _on_epoch(self, event: EpochEvent) -> None:
        self.plots.add_epoch(event.epoch, event.epoch * self._steps_per_epoch, event.test_loss, event.test_accuracy)
        self.show_status(f"Epoch {event.epoch}/{event.total_epochs}: test accuracy {event.test_accuracy:.2%}")
        self.setWindowModified(True)
        self.training_epoch.emit(event)

    @Slot(object)
    def _on_snapshot(self, snapshot: ModelSnapshot) -> None:
        self.snapshot = snapshot
        self.set_predictor(Predictor.from_state(snapshot.architecture, snapshot.model_kwargs, snapshot.state,
                                                snapshot.normalization, snapshot.class_names, snapshot.label))

    @Slot(str)
    def _on_training_notice(self, message: str) -> None:
        """Shown in the status line, and kept on the device label (later statuses replace the line)."""
        self.show_status(f"Note: {message}")
        self._update_device_label(note=message)

    @Slot(str)
    def _on_autosaved(self, path: str) -> None:
        self.show_status(f"Autosaved {path}")

    @Slot(object)
    def _on_finished(self, event: FinishedEvent) -> None:
        verb = "Stopped" if event.stopped else "Finished"
        accuracy = f", test accuracy {event.test_accuracy:.2%}" if event.test_accuracy is not None else ""
        self.show_status(f"{verb} after {epochs_text(event.epochs_done)}{accuracy}")
        self.training_panel.progress.setFormat(f"{verb.lower()}: {epochs_text(event.epochs_done)}{accuracy}")
        self.training_finished.emit(event)

    @Slot(str)
    def _on_training_failed(self, message: str) -> None:
        self.show_error("Training failed", message)
        self.training_finished.emit(None)

    @Slot()
    def _on_training_done(self) -> None:
        finish(self.training_thread)
        self.training_thread = None
        self.training_worker = None
        self._set_running(False)
        self.speed_label.setText("")
        trainer = self._trained_run()
        if trainer is not None:  # Continue now continues this run
            self.training_panel.set_resumable(
                True, f"The last run ({trainer.config.model}): {epochs_text(trainer.epochs_done)} done",
                trainer.config, checked=self.training_panel.resume_check.isChecked())

    def set_paused(self, paused: bool) -> None:
        if self.training_worker is None:
            return
        if paused:
            self.training_worker.control.pause()
            self.show_status("Paused")
        else:
            self.training_worker.control.resume()
            self.show_status("Resumed")

    def stop_training(self, wait: bool = False) -> None:
        if self.training_worker is not None:
            self.training_worker.cancel()
            self.show_status("Stopping...")
        if wait and self.training_thread is not None:
            self.training_thread.wait()
            QApplication.processEvents()

    # ------------------------------------------------------------------------------------------ checkpoints
    def open_checkpoint_dialog(self) -> None:
        start_dir = str(self.settings.value("paths/checkpoints", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", start_dir, "Checkpoints (*.pt);;All files (*)")
        if path:
            self.open_checkpoint(path)

    def open_checkpoint(self, path: str | Path) -> bool:
        """Start opening a checkpoint on a worker; whether it started. On any problem the current model
        stays and the problem is shown. ``checkpoint_opened`` says how it ended (False at once when refused)."""
        refusal = None
        if not self.open_action.isEnabled():  # a run is on (the menu is locked; this catches other callers)
            refusal = f"Not opened {Path(path).name}: stop the training first"
        elif self.checkpoint_thread is not None:
            refusal = f"Not opened {Path(path).name}: still opening {Path(self.checkpoint_worker.path).name}"
        if refusal is not None:
            self.show_status(refusal)
            self.checkpoint_opened.emit(False)
            return False
        self.show_status(f"Opening {Path(path).name}...")
        self.checkpoint_worker = worker = CheckpointWorker(str(path))
        self.checkpoint_thread = start(worker, self, loaded=self._on_checkpoint_loaded,
                                       failed=self._on_checkpoint_failed, done=self._on_checkpoint_done)
        return True

    @Slot(str)
    def _on_checkpoint_failed(self, message: str) -> None:
        self.show_status("Not opened: see the message")
        self.show_error("Cannot open checkpoint", message)
        self.checkpoint_opened.emit(False)

    @Slot()
    def _on_checkpoint_done(self) -> None:
        finish(self.checkpoint_thread)
        self.checkpoint_thread = self.checkpoint_worker = None

    @Slot(object)
    def _on_checkpoint_loaded(self, loaded: ckpt.Checkpoint) -> None:
        if not self.open_action.isEnabled():  # a run started while the file was being read
            self.show_status(f"Not opened {loaded.display_name}: a training run started meanwhile")
            self.checkpoint_opened.emit(False)
            return
        path = loaded.path
        self.checkpoint = loaded
        self.snapshot = None
        self.trainer = None
        self._set_model_file(Path(path))
        self.settings.setValue("paths/checkpoints", str(Path(path).parent))
        self._remember_recent(str(Path(path).resolve()))
        self.set_predictor(Predictor.from_checkpoint(loaded))
        self.plots.load_history(loaded.history.to_dict())
        self.training_panel.set_defaults(loaded.config)
        self.training_panel.set_resumable(True, f"{loaded.display_name}: {epochs_text(loaded.epochs_done)} done",
                                          loaded.config)
        switched = self._select_dataset_of(loaded)
        self.show_status(f"Opened {loaded.display_name} ({loaded.architecture}, {epochs_text(loaded.epochs_done)})"
                         + (f"; data set switched to {switched}, which it was trained on" if switched else ""))
        self.checkpoint_opened.emit(True)

    def _select_dataset_of(self, loaded: ckpt.Checkpoint) -> str | None:
        """Choose the data set a checkpoint was trained on, so that Evaluate and Continue use it: the
        folder its data came from, where that still holds the files and is not where the data set's name
        leads anyway; else the known data set of that name.

        Only when no folder is chosen: a folder the user opened stays chosen (its files may be the same
        set). No run is on: a run locks opening checkpoints. Returns what was chosen, if anything.
        """
        name, folder = self.training_panel.dataset_choice()
        if folder is not None:
            return None
        spec = DATASETS.get(loaded.dataset_name)
        recorded = loaded.data_folder()
        if recorded is not None:
            found = locate(spec.key) if spec is not None else None
            if found is None or found.resolve() != recorded.resolve():
                self.training_panel.add_folder(str(recorded))
                return f"the folder {recorded}"
        if spec is None or name == spec.key:
            return None
        return spec.title if self.training_panel.select_dataset(spec.key) else None

    def _set_model_file(self, path: Path) -> None:
        """The model on hand was just opened from or saved to ``path``: Save writes there now."""
        self.model_file = path
        self.setWindowModified(False)
        self._update_title()

    def _update_title(self) -> None:
        """The model's file in the title, with ``*`` (window modified) once it has trained since."""
        name = self.model_file.name if self.model_file else ("unsaved model" if self.trainer is not None else "")
        self.setWindowTitle(f"{name}[*] - {APP_NAME}" if name else APP_NAME)

    def _has_model_to_save(self) -> bool:
        return self._trained_run() is not None or self.checkpoint is not None

    def _current_payload(self) -> dict | None:
        trainer = self._trained_run()
        if trainer is not None:
            return ckpt.trainer_payload(trainer)
        return ckpt.checkpoint_payload(self.checkpoint) if self.checkpoint is not None else None

    def save_checkpoint(self) -> None:
        if self.model_file is None:
            self.save_checkpoint_as()
        else:
            self.save_to(self.model_file)

    def save_checkpoint_as(self) -> None:
        if not self._has_model_to_save():
            self.show_error("Save checkpoint", NOTHING_TO_SAVE)
            return
        start_dir = str(self.settings.value("paths/checkpoints", str(Path.home())))
        path, _ = QFileDialog.getSaveFileName(self, "Save checkpoint", str(Path(start_dir) / "digits.pt"),
                                              "Checkpoints (*.pt)")
        if path:
            self.save_to(path)

    def may_write(self, path: str | Path, title: str, keep_model_file: bool = False) -> bool:
        """Whether the app may write ``path`` (engine.files.check_output); if not, says why in a dialog.

        No file is written over a data set the app has loaded, nor, with ``keep_model_file``, over the
        model's own checkpoint (an export named like it); Save itself does replace the model's file."""
        inputs = [file for dataset in self.datasets.values() for file in split_files(Path(dataset.folder))]
        if keep_model_file:
            inputs += [self.model_file, self.checkpoint.path if self.checkpoint is not None else None]
        try:
            check_output(path, inputs)
        except UserError as exc:
            self.show_error(title, str(exc))
            return False
        return True

    def save_to(self, path: str | Path) -> bool:
        payload = self._current_payload()
        if payload is None:
            self.show_error("Save checkpoint", NOTHING_TO_SAVE)
            return False
        if not self.may_write(path, "Cannot save checkpoint"):
            return False
        try:
            saved = ckpt.save(payload, path)
        except UserError as exc:
            self.show_error("Cannot save checkpoint", str(exc))
            return False
        self._set_model_file(saved)
        self.settings.setValue("paths/checkpoints", str(saved.parent))
        self._remember_recent(str(saved.resolve()))
        self.show_status(f"Saved {saved}")
        return True

    EXPORT_FILTERS = {"PyTorch program, torch.export (*.pt2)": "pt2", "TorchScript (*.pt)": "torchscript",
                      "ONNX (*.onnx)": "onnx"}

    def export_dialog(self) -> None:
        from engine.export import SUFFIXES, format_for_path

        if self.export_thread is not None:
            self.show_status("An export is still being written; try again when it is done")
            return
        if not self._has_model_to_save():
            self.show_error("Export", "Nothing to export yet: train a model or open a checkpoint.")
            return
        start_dir = str(self.settings.value("paths/checkpoints", str(Path.home())))
        path, chosen = QFileDialog.getSaveFileName(self, "Export model", str(Path(start_dir) / "digits.pt2"),
                                                   ";;".join(self.EXPORT_FILTERS))
        if not path:
            return
        # a typed suffix wins; with none, the chosen filter decides and adds its suffix
        fmt = format_for_path(path, default=self.EXPORT_FILTERS.get(chosen, "pt2"))
        if not Path(path).suffix:
            path += SUFFIXES[fmt]
        if not self.may_write(path, "Export failed", keep_model_file=True):
            return
        self.show_status(f"Exporting {fmt} model to {path}...")
        self.export_worker = worker = ExportWorker(ckpt.from_payload(self._current_payload()), fmt, path)
        self.export_thread = start(worker, self, exported=self._on_exported, failed=self._on_export_failed,
                                   done=self._on_export_done)

    CURVE_FILTERS = {"CSV table (*.csv)": ".csv", "PNG image (*.png)": ".png"}

    def export_curves_dialog(self) -> None:
        """The loss and accuracy curves as shown (a live run's too): a CSV table or a PNG image."""
        if self.plots.is_empty():
            self.show_error("Export training curves", "Nothing to export yet: train a model or open a checkpoint.")
            return
        path, chosen = ask_export_path(self, self.settings, "Export training curves", "training.csv",
                                       ";;".join(self.CURVE_FILTERS))
        if path:
            self.export_curves(path, default_suffix=self.CURVE_FILTERS.get(chosen, ".csv"))

    def export_curves(self, path: str | Path, default_suffix: str = ".csv") -> Path | None:
        """A typed .png or .csv suffix wins; with neither, ``default_suffix`` is added."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".png"):
            path, suffix = path.with_name(path.name + default_suffix), default_suffix
        write = self.plots.write_png if suffix == ".png" else self.plots.write_csv
        written = self.write_export(lambda: [write(path)], path)
        return written[0] if written else None

    def write_export(self, write: Callable[[], list[Path]], path: str | Path) -> list[Path] | None:
        """Run an export's ``write`` (which returns the files written) and say what came of it: the files
        in the status line, or why not in a dialog. Returns the files, or None when it failed."""
        if not self.may_write(path, "Export failed", keep_model_file=True):
            return None
        try:
            written = write()
        except OSError as exc:
            self.show_error("Export failed", f"cannot write {path}: {exc.strerror or exc}")
            return None
        self.show_status("Wrote " + ", ".join(str(p) for p in written))
        return written

    @Slot(str, str)
    def _on_exported(self, fmt: str, path: str) -> None:
        self.show_status(f"Exported {fmt} model to {path}")

    @Slot(str)
    def _on_export_failed(self, message: str) -> None:
        self.show_error("Export failed", message)

    @Slot()
    def _on_export_done(self) -> None:
        finish(self.export_thread)
        self.export_thread = self.export_worker = None

    def _remember_recent(self, path: str) -> None:
        recent = [p for p in self._recent() if p != path]
        self.settings.setValue("recent/checkpoints", [path, *recent][:MAX_RECENT])
        self._refresh_recent_menu()

    def _recent(self) -> list[str]:
        return settings_list(self.settings, "recent/checkpoints")

    def _refresh_recent_menu(self) -> None:
        """One entry per recent file; a file that is gone (moved, deleted) is listed greyed out, so the
        list keeps its place should it come back. Refreshed whenever the menu opens."""
        self.recent_menu.clear()
        recent = self._recent()
        for path in recent:
            exists = Path(path).is_file()
            action = self.recent_menu.addAction(path if exists else f"{path} (not found)")
            action.setEnabled(exists)
            action.triggered.connect(lambda _=False, p=path: self.open_checkpoint(p))
        if recent:
            self.recent_menu.addSeparator()
            clear = self.recent_menu.addAction("&Clear list")
            clear.setObjectName("clearRecentAction")
            clear.triggered.connect(self._clear_recent)
        self.recent_menu.setEnabled(bool(recent) and self.open_action.isEnabled())

    def _clear_recent(self) -> None:
        self.settings.setValue("recent/checkpoints", [])
        self._refresh_recent_menu()

    # ------------------------------------------------------------------------------------------ drops
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if dropped_file(event.mimeData(), CHECKPOINT_SUFFIXES) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        path = dropped_file(event.mimeData(), CHECKPOINT_SUFFIXES)
        if path is not None:
            event.acceptProposedAction()
            # once the drop has returned: a message box inside it would hold up the drag's source on some systems
            QTimer.singleShot(0, self, lambda: self.open_checkpoint(path))

    # ------------------------------------------------------------------------------------------ images
    def open_image_dialog(self) -> None:
        start_dir = str(self.settings.value("paths/images", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(self, "Open image", start_dir,
                                              "Images (*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp)")
        if path:
            self.settings.setValue("paths/images", str(Path(path).parent))
            self.recognition.open_image(path)

    # ------------------------------------------------------------------------------------------ about
    def show_about(self) -> None:
        QMessageBox.about(self, f"About {APP_NAME}", about_text(self.training_panel.device(),
                                                               self.current_model_description()))

    # ------------------------------------------------------------------------------------------ lifetime
    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(fitted_size(DEFAULT_SIZE, self.minimumSizeHint(), self.screen().availableGeometry().size()))
        self.training_panel.restore_settings(self.settings)

    def save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        try:
            self.training_panel.save_settings(self.settings)
        except UserError:
            pass
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.is_training:
            kept = ("The last completed epoch is kept in the autosaved checkpoint." if self.autosave_path else
                    "This run cannot autosave (see the note on the device): Save first to keep its model.")
            if not self.confirm("Training is running", f"Stop training and quit? {kept}"):
                event.ignore()
                return
            self.stop_training(wait=True)
        # What waits for a data set being loaded (a Train or Evaluate press) must not start once the
        # window is gone: the app would quit with that worker's thread still running, and abort.
        self._after_dataset.clear()
        self.cancel_download()
        if self.dataset_thread is not None:
            self.dataset_thread.wait()
        finish(self.warm_up_thread)  # it cannot be cancelled, but it takes a second at most
        self.warm_up_thread = None
        finish(self.export_thread)  # nor can an export, which takes a second or two at most
        self.export_thread = None
        finish(self.checkpoint_thread)  # nor a checkpoint being opened, bounded by its size limits
        self.checkpoint_thread = None
        self.evaluation.shutdown()
        self.save_settings()
        self.garbage_collector.stop()  # every worker has finished: collection may run anywhere again
        event.accept()


class EnabledMirror(QObject):
    """Keeps an action enabled exactly when a widget is: Qt has no signal for a widget's enabled state,
    but sends the widget an EnabledChange event, which this filter watches."""

    def __init__(self, action: QAction, widget: QWidget) -> None:
        super().__init__(action)
        self.action = action
        action.setEnabled(widget.isEnabled())
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.EnabledChange:
            self.action.setEnabled(watched.isEnabled())
        return False


def fitted_size(preferred: QSize, minimum: QSize, available: QSize) -> QSize:
    """The first-launch window size: ``preferred``, shrunk to fit a smaller screen's ``available`` area
    with its frame (a 1366x768 laptop, say), but never below the window's ``minimum``. A saved size is
    restored instead, and Qt then moves a window that would be off screen."""
    room = available - FRAME_ALLOWANCE
    return preferred.boundedTo(room).expandedTo(minimum)


def about_text(device: str, model: str) -> str:
    import PySide6
    import torch
    from PySide6.QtCore import qVersion

    from engine import __version__
    from engine.lenet_features import kernel_status

    kernel = kernel_status(build=False)  # the warm-up builds it; this thread must not wait for a compiler
    kernel_line = ("being prepared" if kernel is None else "in use" if kernel.available
                   else f"not in use ({html.escape(kernel.reason)})")
    return (f"<h3>{APP_NAME} {__version__}</h3>"
            "<p>Train a convolutional network on handwritten digits and recognise the digits you draw.</p>"
            f"<p>PyTorch {torch.__version__}<br>Qt {qVersion()} (PySide6 {PySide6.__version__})<br>"
            f"Device in use: {device}<br>Model on the canvas: {model}<br>"
            f"LeNet's fused CPU kernel: {kernel_line}</p>")


def _describe(dataset: Any) -> str:
    return f"{dataset.name}: {len(dataset.train):,} training / {len(dataset.test):,} test images\n{dataset.folder}"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"
