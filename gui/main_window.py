"""The main window: training on the left, plots and evaluation in the middle, recognition on the right.

The window connects the panels (which show, collect and emit signals) to the owners of the app's state:
the :class:`gui.datasets.DatasetLoader` (data sets), the :class:`gui.model_on_hand.ModelOnHand` (the
model Save, Continue, Evaluate, the canvas and the title read), and one :class:`gui.workers.Job` per
kind of worker. It adds no engine logic of its own: training, checkpoints, evaluation and preprocessing
are all engine calls, and a run reaches it only as events carrying plain data (gui.workers).
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QEvent, QObject, QSettings, QSize, Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QIcon,
    QKeySequence,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QWidget,
)

from engine import checkpoint as ckpt
from engine.data import DATASETS, locate
from engine.devices import list_devices
from engine.errors import UserError
from engine.events import EpochEvent, FinishedEvent, epochs_text
from engine.files import check_output
from engine.inference import Predictor, load_bundled
from engine.runs import default_store
from engine.teaching import MIN_TO_HOLD_OUT, save_sample
from gui.app import APP_ICON
from gui.autosave import MAX_KEPT, autosave_dir, autosaved_runs, new_autosave_path, prune
from gui.dataset_browser import DatasetBrowser
from gui.datasets import DatasetLoader
from gui.draw_canvas import dropped_file
from gui.evaluation_view import EvaluationView
from gui.garbage_collection import GuiThreadGarbageCollector
from gui.loss_plot import TrainingPlots
from gui.model_on_hand import ModelOnHand
from gui.my_digits import MyDigitsView
from gui.prediction_panel import RecognitionPanel
from gui.runs_view import RunsView
from gui.settings import ask_export_path, settings_list
from gui.training_panel import TrainingPanel
from gui.workers import CheckpointWorker, ExportWorker, Job, TeachWorker, TrainingWorker, WarmUpWorker

APP_NAME = "Digit Studio"
APP_ROOT = Path(__file__).resolve().parents[1]
SHORTCUTS = (
    ("Ctrl+O", "Open a checkpoint"), ("Ctrl+S", "Save the model on hand"), ("Ctrl+Shift+S", "Save it as..."),
    ("Ctrl+Return", "Train"), ("Ctrl+P", "Pause or resume"), ("Ctrl+.", "Stop"),
    ("Ctrl+E", "Evaluate on the test set"), ("Ctrl+Z", "Undo on the canvas (a stroke, a Clear, an image)"),
    ("Delete", "Clear the canvas"), ("Ctrl+Q", "Quit"), ("F1", "These shortcuts"),
)
MAX_RECENT = 8
UNSAVED_KEY = "session/unsaved_autosave"  # the autosave of a model never saved, offered at the next launch
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
        self.loader = DatasetLoader(self)
        self.model = ModelOnHand()
        self.training = Job(self)
        self.warm_up = Job(self)
        self.exporting = Job(self)
        self.opening = Job(self)
        self.teaching = Job(self)
        self.teaching.finished.connect(lambda: self.my_digits.show_teaching(False))
        self.opening.finished.connect(self._on_opening_done)
        self._restoring = False
        self.training.finished.connect(self._on_training_done)
        self.warm_up.finished.connect(self.garbage_collector.freeze)
        self._warm_up_scheduled = False
        self._held_model: tuple[ckpt.Checkpoint, str] | None = None  # a run's epoch that learned nothing
        self._finished_text = ""
        self.last_error: str | None = None
        self.autosave_path: Path | None = None
        self._run: dict[str, Any] = {"steps_per_epoch": 1, "epochs": 1, "batch_size": 1}
        self._run_model: tuple[Any, Path | None] | None = None  # the last epoch model of a run, its autosave

        self.training_panel = TrainingPanel(self.devices)
        self.plots = TrainingPlots()
        self.recognition = RecognitionPanel()
        self.evaluation = EvaluationView(self.loader, self.settings)
        self.browser = DatasetBrowser(self.loader)
        self.my_digits = MyDigitsView()
        self.runs_view = RunsView(default_store(), owned=[autosave_dir()])
        # The side panels scroll vertically, so the window fits a 1024x600 screen (tests/test_gui_layout.py)
        scroll = _vertical_scroll(self.training_panel)
        recognition = _vertical_scroll(self.recognition)
        self.tabs = QTabWidget(objectName="centerTabs")
        self.tabs.addTab(self.plots, "Training")
        self.tabs.addTab(self.evaluation, "Evaluate")
        self.tabs.addTab(self.browser, "Data")
        self.tabs.addTab(self.my_digits, "My digits")
        self.tabs.addTab(self.runs_view, "Runs")
        self.tabs.currentChanged.connect(
            lambda _: self.runs_view.refresh() if self.tabs.currentWidget() is self.runs_view else None)
        self.splitter = splitter = QSplitter(Qt.Orientation.Horizontal, objectName="mainSplitter")
        splitter.addWidget(scroll)
        splitter.addWidget(self.tabs)
        splitter.addWidget(recognition)
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
        self._choose_dataset()

    # ------------------------------------------------------------------------------------------ start-up
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._warm_up_scheduled:  # once the window is up: it must not wait for this
            self._warm_up_scheduled = True
            QTimer.singleShot(WARM_UP_DELAY_MS, self, self._warm_up)
            QTimer.singleShot(0, self, self._offer_restore)

    @Slot()
    def _offer_restore(self) -> None:
        """The last session ended with a model that was never saved (a crash, a kill): offer it back."""
        path = str(self.settings.value(UNSAVED_KEY, "") or "")
        self.settings.remove(UNSAVED_KEY)
        if path and Path(path).is_file() and self.confirm(
                "Restore the unsaved model?", f"The last session ended with a model that was never saved. "
                f"Its last completed epoch was autosaved in {path}. Open it again?"):
            self.restore_autosave(path)

    def restore_autosave(self, path: str | Path) -> bool:
        """Open an autosave as the model on hand, unsaved (Save asks for a name), as the run left it."""
        self._restoring = True
        started = self.open_checkpoint(path)
        self._restoring = started
        return started

    @Slot()
    def _warm_up(self) -> None:
        """The first training run's one-off start-up work, in the background (engine.cpu_tuning.warm_up).

        Collections are held meanwhile, and the objects it creates (and the rest of start-up's) are then
        frozen out of later collections: see gui.garbage_collection.
        """
        if not self.isVisible():  # closed before the timer fired
            return
        self.garbage_collector.hold()
        self.warm_up.start(WarmUpWorker(), failed=self.show_status)

    # ------------------------------------------------------------------------------------------ construction
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_action = self._action(file_menu, "&Open checkpoint...", QKeySequence.StandardKey.Open,
                                        self.open_checkpoint_dialog, "openCheckpointAction")
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.setObjectName("recentMenu")
        self.autosave_menu = QMenu("&Autosaved runs", self.recent_menu, objectName="autosaveMenu")
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
        run_menu.addSeparator()
        self.low_priority_action = QAction("&Lower priority (for the runs that start next)", self, checkable=True,
                                           objectName="lowPriorityAction")
        self.low_priority_action.setToolTip("Train below the window's priority, so other programs and the window "
                                            "come first: a steadier window, training about 7 % slower")
        run_menu.addAction(self.low_priority_action)
        self._action(run_menu, "&TensorBoard logs...", None, self.choose_tensorboard_dir, "tensorboardAction")
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts", QKeySequence.StandardKey.HelpContents, self.show_shortcuts,
                     "shortcutsAction")
        self._action(help_menu, "&Documentation", None, self.open_documentation, "documentationAction")
        help_menu.addSeparator()
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
        panel.download_cancel_requested.connect(self.loader.cancel)
        panel.dataset_changed.connect(self._choose_dataset)
        panel.device_changed.connect(self._update_device_label)
        loader = self.loader
        loader.status.connect(panel.show_dataset_status)
        loader.notice.connect(self.show_status)
        loader.busy.connect(panel.show_download)
        loader.progress.connect(panel.show_download_progress)
        loader.progress.connect(self.download_progress)
        loader.loaded.connect(self._on_dataset_loaded)
        loader.failed.connect(lambda message: self.show_error("Data set", message))
        loader.fell_back.connect(self._on_dataset_fell_back)
        self.recognition.open_image_requested.connect(self.open_image_dialog)
        self.recognition.message.connect(self.show_status)
        for view in (self.evaluation, self.browser):
            view.send_to_canvas.connect(self.recognition.show_array)
            view.message.connect(self.show_status)
            view.error.connect(self.show_error)
        self.evaluation.export_requested.connect(self.write_export)
        self.recognition.labelled.connect(self.keep_sample)
        self.recognition.wide_changed.connect(self._make_room_for_the_canvas)
        self.runs_view.open_requested.connect(self.open_checkpoint)
        self.runs_view.message.connect(self.show_status)
        self.runs_view.delete_requested.connect(self._delete_runs)
        self.runs_view.export_requested.connect(self._export_runs_dialog)
        self.my_digits.teach_requested.connect(self.teach)
        self.my_digits.message.connect(self.show_status)
        # A checkpoint file dropped anywhere opens: Qt offers a drag to the innermost widget that takes
        # drops, then to its parents while refused, and the canvas, plots and lists refuse checkpoints.
        self.setAcceptDrops(True)

    # ------------------------------------------------------------------------------------------ messages
    @Slot(str)
    def show_status(self, text: str) -> None:
        self.status_label.setText(text)
        self.status_label.setToolTip(text)  # the whole of a message too long for the status bar

    def show_error(self, title: str, message: str) -> None:
        """Errors from the engine: a dialog (and the status bar); the app keeps running."""
        self.last_error = message
        self.show_status(message)
        QMessageBox.warning(self, title, message)

    def keep_or_discard_model(self, doing: str) -> bool:
        """Before the unsaved model on hand would be dropped (Quit, a new run): Save, Discard or Cancel, as
        every document application asks. True to go on (saved, or discarded), False to cancel."""
        if not self.model.unsaved:
            return True
        answer = self.ask_unsaved(f"{doing}: the model on hand ({self.model.predictor.source}) has not been saved. "
                                  "Save it first?")
        if answer == "save":
            self.save_checkpoint()
            return not self.model.unsaved  # a save dialog cancelled, or a save that failed: stay
        return answer == "discard"

    def ask_unsaved(self, question: str) -> str:
        """"save", "discard" or "cancel"."""
        buttons = (QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                   | QMessageBox.StandardButton.Cancel)
        answer = QMessageBox.question(self, "Unsaved model", question, buttons, QMessageBox.StandardButton.Save)
        return {QMessageBox.StandardButton.Save: "save", QMessageBox.StandardButton.Discard: "discard"}.get(
            answer, "cancel")

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
            self.model.use_bundled(load_bundled())
        except UserError as exc:
            self.show_status(f"No default model: {exc}")
            return
        self._model_changed()

    def current_model_description(self) -> str:
        return self.model.predictor.source if self.model.predictor else "no model"

    def set_predictor(self, predictor: Predictor) -> None:
        """Answer on the canvas with ``predictor`` (a model that is not the one on hand, for a try)."""
        self.recognition.set_predictor(predictor)
        self.evaluation.set_model(predictor, -1)

    def _model_changed(self) -> None:
        """Everything that shows the model on hand follows it: the canvas, Evaluate, the title, Continue."""
        model = self.model
        if model.predictor is not None:
            self.recognition.set_predictor(model.predictor)
            self.evaluation.set_model(model.predictor, model.version)
        name = model.title()
        self.setWindowTitle(f"{name}[*] - {APP_NAME}" if name else APP_NAME)
        self.setWindowModified(not model.saved and bool(name))
        source = model.resume_source()
        self.training_panel.set_resumable(source is not None, model.description(),
                                          source.config if source is not None else None,
                                          checked=self.training_panel.continuing() and source is not None)

    @Slot(bool)
    def _make_room_for_the_canvas(self, wide: bool) -> None:
        """A wide canvas takes half the window from the tabs; a square one gives it back."""
        sizes = self.splitter.sizes()
        total = sum(sizes)
        wanted = total // 2 if wide else min(sizes[2], max(440, total * 3 // 10))
        moved = min(wanted - sizes[2], sizes[1] - self.tabs.minimumSizeHint().width())
        if (wide and moved > 0) or (not wide and moved < 0):
            self.splitter.setSizes([sizes[0], sizes[1] - moved, sizes[2] + moved])

    # ------------------------------------------------------------------------------------------ teaching
    @Slot(int)
    def keep_sample(self, index: int) -> None:
        """The user says what is on the canvas (the digit selected, in a number): keep the drawing, and its
        28x28 form, as a personal sample."""
        panel = self.recognition
        name = panel.predictor.class_names[index]
        sample = panel.sample()
        if sample is None:
            self.show_status("Nothing recognisable on the canvas to keep")
            return
        try:
            path = save_sample(self.my_digits.folder, name, *sample)
        except OSError as exc:
            self.show_error("Cannot keep the sample", f"{self.my_digits.folder}: {exc.strerror or exc}")
            return
        self.my_digits.refresh()
        count = len(self.my_digits.samples()[name])
        self.show_status(f"Kept as a sample of {name} ({count} of {name}; My digits tab, then Teach) in {path.parent}")

    @Slot()
    def teach(self) -> None:
        if self.teaching.running or self.is_training:
            self.show_status("Teaching waits until the run in progress has ended")
            return
        self.my_digits.show_teaching(True)
        self.show_status("Teaching the model your samples...")
        self.teaching.start(TeachWorker(self.model.checkpoint, self.my_digits.folder), taught=self._on_taught,
                            notice=self.show_status, failed=self._on_teach_failed)

    @Slot(object, object)
    def _on_taught(self, checkpoint: ckpt.Checkpoint, result: Any) -> None:
        self.model.adopt(checkpoint, f"taught model ({result.samples} samples)")
        self._model_changed()
        figures = (f"On {result.held_out} of your samples it never trained on: {result.base_accuracy:.0%} "
                   f"before, {result.taught_accuracy:.0%} after. " if result.held_out else
                   f"Keep {MIN_TO_HOLD_OUT} or more of a digit to see how it does on samples it never trained on. ")
        self.my_digits.show_result(f"Taught {result.samples} samples in {result.seconds:.1f} s. {figures}"
                                   "The taught model answers on the canvas now; Save keeps it.")
        self.show_status(f"Taught {result.samples} samples; the model on hand is the taught one (not saved)")

    @Slot(str)
    def _on_teach_failed(self, message: str) -> None:
        self.show_error("Teaching", message)

    # ------------------------------------------------------------------------------------------ data sets
    @Slot()
    def _choose_dataset(self) -> None:
        self.loader.choose(*self.training_panel.dataset_choice())

    @Slot(str, str)
    def _on_dataset_fell_back(self, key: str, reason: str) -> None:
        """Offline (or every mirror failing): say so, use the built-in sample, offer a folder of one's own."""
        self.training_panel.select_dataset(key)
        self.inform("Using the built-in sample",
                    f"{reason}\n\nTraining goes on with {DATASETS[key].title} instead. To use the full set, "
                    "connect to the internet and train again, or put its four IDX files in a folder and choose "
                    "Open folder... (File > Open data folder).", offer_folder=True)

    def inform(self, title: str, message: str, offer_folder: bool = False) -> None:
        """A message the user should read, with an Open folder... button where that is the way forward."""
        self.show_status(message.splitlines()[0])
        box = QMessageBox(QMessageBox.Icon.Information, title, message, QMessageBox.StandardButton.Ok, self)
        folder_button = box.addButton("Open folder...", QMessageBox.ButtonRole.ActionRole) if offer_folder else None
        box.exec()
        if folder_button is not None and box.clickedButton() is folder_button:
            self.open_data_folder_dialog()

    @Slot(object)
    def _on_dataset_loaded(self, dataset: Any) -> None:
        self.show_status(f"Loaded {dataset.name} from {dataset.folder}")
        self.dataset_loaded.emit(dataset)

    def open_data_folder_dialog(self) -> None:
        start_dir = str(self.settings.value("paths/data", str(Path.home())))
        folder = QFileDialog.getExistingDirectory(self, "Open data set folder (IDX files)", start_dir)
        if folder:
            self.settings.setValue("paths/data", folder)
            self.training_panel.add_folder(folder)

    # ------------------------------------------------------------------------------------------ training
    @property
    def is_training(self) -> bool:
        return self.training.running

    def start_training(self) -> None:
        if self.is_training:
            return
        try:
            config = self.training_panel.config()
        except UserError as exc:
            self.show_error("Training settings", str(exc))
            return
        resume = self.model.resume_source() if self.training_panel.continuing() else None
        if resume is None and not self.keep_or_discard_model("Start a new run"):
            return
        self._set_running(True)
        self.training_panel.show_progress_text("loading data...")
        self.loader.ensure(lambda dataset: self._start_worker(dataset, config, resume), on_fail=self._on_no_data)

    def _on_no_data(self) -> None:
        """The data set could not be loaded (or its download was cancelled): nothing runs, and the bar says so."""
        self._set_running(False)
        self.training_panel.show_progress_text("not started: the data set could not be loaded")

    def _set_running(self, running: bool) -> None:
        """Lock what would change a run's data or model under it, from Train until the run has ended: the
        training panel's settings, and opening a checkpoint or a data folder (a checkpoint opened mid-run
        replaced the live curves with its own history and lost the run's batch size for the ETA)."""
        self.training_panel.set_running(running)
        self.open_action.setEnabled(not running)
        self.open_data_folder_action.setEnabled(not running)
        self._refresh_recent_menu()
        if not running:
            self.training_panel.show_progress_text("")

    def _start_worker(self, dataset: Any, config: Any, checkpoint: ckpt.Checkpoint | None) -> None:
        self.model.start_run(continuing=checkpoint is not None)
        self._model_changed()
        self._update_device_label()  # clears a previous run's note
        self.autosave_path = self._new_autosave_path(config.model, dataset.name)
        self.training.start(
            TrainingWorker(dataset, config, checkpoint, self.autosave_path,
                           low_priority=self.low_priority_action.isChecked(), runs_store=self.runs_view.store,
                           tensorboard_dir=self._tensorboard_dir()),
            started_training=self._on_training_started, steps=self._on_steps, epoch=self._on_epoch,
            epoch_model=self._on_epoch_model, saved=self._on_autosaved, notice=self._on_training_notice,
            finished=self._on_finished, failed=self._on_training_failed)
        self.show_status("Preparing training...")

    def _new_autosave_path(self, model: str, dataset: str) -> Path | None:
        """This run's autosave file, after making room for it; None (and a note) when the folder is unusable."""
        folder = autosave_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._on_training_notice(f"No autosaves for this run: cannot create {folder} ({exc.strerror or exc})")
            return None
        in_use = [self.model.file] if self.model.file is not None else []
        prune(folder, keep=MAX_KEPT - 1, protect=[*in_use, *map(Path, self._recent())])  # room for this run's
        return new_autosave_path(folder, model, dataset)

    @Slot(object)
    def _on_training_started(self, info: dict) -> None:
        self._run = {"steps_per_epoch": info["steps_per_epoch"], "epochs": info["config"].epochs,
                     "batch_size": info["config"].batch_size, "model": info["config"].model}
        self.plots.load_history(info["history"], info["steps_per_epoch"])
        self.training_panel.show_run_progress(info["epochs_done"] * info["steps_per_epoch"],
                                              info["config"].epochs * info["steps_per_epoch"])
        self.tabs.setCurrentWidget(self.plots)
        self.show_status(f"Training {info['config'].model} on {info['device']}")

    @Slot(object)
    def _on_steps(self, events: list) -> None:
        self.plots.add_losses([e.step for e in events], [e.loss for e in events], [e.lr for e in events])
        last = events[-1]
        self.training_panel.show_run_progress(last.step, None, f"epoch {last.epoch + 1}/{self._run['epochs']}  "
                                                               f"batch {last.batch}/{last.batches_per_epoch}")
        remaining_steps = self._run["epochs"] * self._run["steps_per_epoch"] - last.step
        eta = remaining_steps * self._run["batch_size"] / max(last.samples_per_second, 1e-9)
        self.speed_label.setText(f"{last.samples_per_second:,.0f} samples/s  ETA {_duration(eta)}  "
                                 f"loss {last.loss:.4f}")
        self.training_steps.emit(events)

    @Slot(object)
    def _on_epoch(self, event: EpochEvent) -> None:
        self.plots.add_epoch(event.epoch, event.epoch * self._run["steps_per_epoch"], event.test_loss,
                             event.test_accuracy, event.train_accuracy)
        self.show_status(f"Epoch {event.epoch}/{event.total_epochs}: test accuracy {event.test_accuracy:.2%}")
        self.training_epoch.emit(event)

    @Slot(object)
    def _on_epoch_model(self, checkpoint: ckpt.Checkpoint) -> None:
        """The run's last completed epoch is now the model on hand (canvas, Evaluate, Save, Continue), unless
        it has learned nothing: an epoch no better than guessing is held back, and the end of the run asks."""
        planned = self._run["epochs"]
        done = checkpoint.epochs_done
        progress = epochs_text(done) if done >= planned else f"{done} of {epochs_text(planned)}"
        label = f"training run ({checkpoint.architecture}, {progress})"
        self._run_model = (checkpoint, self.autosave_path)  # a Save of this model joins the run's record
        if at_chance(checkpoint):
            self._held_model = (checkpoint, label)
            self.show_status(f"Epoch {done}: test accuracy {last_accuracy(checkpoint):.2%}, no better than "
                             "guessing; the model on hand stays")
            return
        self._held_model = None
        self._use_run_model(checkpoint, label)

    def _use_run_model(self, checkpoint: ckpt.Checkpoint, label: str) -> None:
        self.model.epoch_done(checkpoint, label)
        self._model_changed()
        self._remember_unsaved(self.autosave_path)

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
        self._finished_text = f"{verb.lower()}: {epochs_text(event.epochs_done)}{accuracy}"
        if self._held_model is not None:
            self._finished_text = f"did not learn: {epochs_text(event.epochs_done)}{accuracy}"
        self.training_finished.emit(event)
        if self.tabs.currentWidget() is self.runs_view:
            self.runs_view.refresh()

    @Slot(str)
    def _on_training_failed(self, message: str) -> None:
        self._finished_text = "failed"
        self._held_model = None
        self.show_error("Training failed", message)
        self.training_finished.emit(None)

    @Slot()
    def _on_training_done(self) -> None:
        self._set_running(False)
        self.training_panel.show_progress_text(self._finished_text)
        self.speed_label.setText("")
        held, self._held_model = self._held_model, None
        if held is not None:  # the run ended no better than guessing: its model replaces the one on hand only if asked
            checkpoint, label = held
            chance = 1 / len(checkpoint.class_names)
            if self.confirm("The run did not learn",
                            f"The run ended at {last_accuracy(checkpoint):.2%} test accuracy, no better than guessing "
                            f"({chance:.0%}): it did not learn (a learning rate of {checkpoint.config.lr:g} may be "
                            "too high). Use its model anyway? No keeps the model you had."):
                self._use_run_model(checkpoint, label)

    def set_paused(self, paused: bool) -> None:
        if not self.training.running:
            return
        if paused:
            self.training.worker.control.pause()
            self.show_status("Paused")
        else:
            self.training.worker.control.resume()
            self.show_status("Resumed")

    def stop_training(self, wait: bool = False) -> None:
        if self.training.running:
            self.training.cancel()
            self.show_status("Stopping...")
        if wait:
            self.training.wait()

    # ------------------------------------------------------------------------------------------ checkpoints
    def open_checkpoint_dialog(self) -> None:
        start_dir = str(self.settings.value("paths/checkpoints", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", start_dir, "Checkpoints (*.pt);;All files (*)")
        if path:
            self.open_checkpoint(path)

    def open_checkpoint(self, path: str | Path) -> bool:
        """Start opening a checkpoint on a worker; whether it started. On any problem the model on hand
        stays and the problem is shown. ``checkpoint_opened`` says how it ended (False at once when refused)."""
        refusal = None
        if not self.open_action.isEnabled():  # a run is on (the menu is locked; this catches other callers)
            refusal = f"Not opened {Path(path).name}: stop the training first"
        elif self.opening.running:
            refusal = f"Not opened {Path(path).name}: still opening {Path(self.opening.worker.path).name}"
        if refusal is not None:
            self.show_status(refusal)
            self.checkpoint_opened.emit(False)
            return False
        self.show_status(f"Opening {Path(path).name}...")
        self.opening.start(CheckpointWorker(str(path)), loaded=self._on_checkpoint_loaded,
                           failed=self._on_checkpoint_failed)
        return True

    def _remember_unsaved(self, autosave: Path | None) -> None:
        """Where the unsaved model on hand is autosaved, for the next launch to offer (None: nothing to offer)."""
        if autosave is None or not self.model.unsaved:
            self.settings.remove(UNSAVED_KEY)
        else:
            self.settings.setValue(UNSAVED_KEY, str(autosave))

    @Slot()
    def _on_opening_done(self) -> None:
        self._restoring = False

    @Slot(str)
    def _on_checkpoint_failed(self, message: str) -> None:
        self.show_status("Not opened: see the message")
        self.show_error("Cannot open checkpoint", message)
        self.checkpoint_opened.emit(False)

    @Slot(object)
    def _on_checkpoint_loaded(self, loaded: ckpt.Checkpoint) -> None:
        if not self.open_action.isEnabled():  # a run started while the file was being read
            self.show_status(f"Not opened {loaded.display_name}: a training run started meanwhile")
            self.checkpoint_opened.emit(False)
            return
        if self._restoring:
            self.model.adopt(loaded, f"restored run ({loaded.architecture}, {epochs_text(loaded.epochs_done)})")
            self._remember_unsaved(Path(loaded.path))
        else:
            self.model.open(loaded)
            self.settings.setValue("paths/checkpoints", str(Path(loaded.path).parent))
            self._remember_recent(str(Path(loaded.path).resolve()))
        self.plots.load_history(loaded.history.to_dict())
        self.training_panel.set_defaults(loaded.config)
        self._model_changed()
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

    def save_checkpoint(self) -> None:
        if self.model.file is None:
            self.save_checkpoint_as()
        else:
            self.save_to(self.model.file)

    def save_checkpoint_as(self) -> None:
        if not self.model.can_save:
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
        inputs: list[Path | None] = list(self.loader.files())
        if keep_model_file:
            inputs += [self.model.file, self.model.checkpoint.path if self.model.checkpoint is not None else None]
        try:
            check_output(path, inputs)
        except UserError as exc:
            self.show_error(title, str(exc))
            return False
        return True

    def save_to(self, path: str | Path) -> bool:
        payload = self.model.payload()
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
        if self._run_model is not None and self.model.checkpoint is self._run_model[0] and self._run_model[1]:
            self.runs_view.record_checkpoint(self._run_model[1], saved)
        self.model.saved_to(saved)
        self._model_changed()
        self._remember_unsaved(None)
        self.settings.setValue("paths/checkpoints", str(saved.parent))
        self._remember_recent(str(saved.resolve()))
        self.show_status(f"Saved {saved}")
        return True

    EXPORT_FILTERS = {"PyTorch program, torch.export (*.pt2)": "pt2", "TorchScript (*.pt)": "torchscript",
                      "ONNX (*.onnx)": "onnx"}

    def export_dialog(self) -> None:
        from engine.export import SUFFIXES, format_for_path

        if self.exporting.running:
            self.show_status("An export is still being written; try again when it is done")
            return
        if not self.model.can_save:
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
        self.exporting.start(ExportWorker(ckpt.from_payload(self.model.payload()), fmt, path),
                             exported=self._on_exported, failed=self._on_export_failed)

    CURVE_FILTERS = {"CSV table (*.csv)": ".csv", "PNG image (*.png)": ".png"}

    def _delete_runs(self, runs: list) -> None:
        if not runs:
            return
        names = ", ".join(run.title for run in runs[:3]) + (f" and {len(runs) - 3} more" if len(runs) > 3 else "")
        if self.confirm("Delete runs", f"Delete {names}: the records and their autosaved checkpoints? "
                                       "Checkpoints you saved yourself are kept."):
            self.runs_view.delete(runs)

    def _export_runs_dialog(self) -> None:
        path, _ = ask_export_path(self, self.settings, "Export run comparison", "runs.csv", "CSV table (*.csv)")
        if path:
            self.export_runs(path)

    def export_runs(self, path: str | Path) -> list[Path] | None:
        """The selected runs as a CSV table and their overlaid curves as a PNG of the same name."""
        path = Path(path) if Path(path).suffix.lower() == ".csv" else Path(f"{path}.csv")
        return self.write_export(lambda: list(self.runs_view.export(path)), path)

    def choose_tensorboard_dir(self) -> None:
        """Training > TensorBoard logs...: a folder for the scalars of the runs that start next, or none."""
        start = str(self.settings.value("training/tensorboard", "") or Path.home())
        folder = QFileDialog.getExistingDirectory(self, "TensorBoard logs (Cancel: none)", start)
        self.settings.setValue("training/tensorboard", folder or "")
        self.show_status(f"TensorBoard logs of the next runs go to {folder}" if folder else "No TensorBoard logs")

    def _tensorboard_dir(self) -> Path | None:
        """A subfolder per run of the chosen folder, as TensorBoard expects to tell runs apart."""
        folder = str(self.settings.value("training/tensorboard", "") or "")
        if not folder:
            return None
        return Path(folder) / (self.autosave_path.stem if self.autosave_path else time.strftime("run-%Y%m%d-%H%M%S"))

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

    @Slot(object, str)
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
        autosaves = self.autosave_menu
        autosaves.clear()
        self.recent_menu.addMenu(autosaves)
        for path, when in autosaved_runs(autosave_dir()):
            action = autosaves.addAction(f"{path.name}  ({when})")
            action.triggered.connect(lambda _=False, p=path: self.restore_autosave(p))
        autosaves.setEnabled(not autosaves.isEmpty())
        if recent:
            self.recent_menu.addSeparator()
            clear = self.recent_menu.addAction("&Clear list")
            clear.setObjectName("clearRecentAction")
            clear.triggered.connect(self._clear_recent)
        self.recent_menu.setEnabled(self.open_action.isEnabled() and (bool(recent) or not autosaves.isEmpty()))

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
    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td><b>{html.escape(keys)}</b></td><td>{html.escape(what)}</td></tr>"
                       for keys, what in SHORTCUTS)
        QMessageBox.information(self, "Keyboard shortcuts", f"<table cellspacing='6'>{rows}</table>")

    def open_documentation(self) -> bool:
        """The user's manual (the README) in the system's viewer; it says where it is if none opens it."""
        manual = APP_ROOT / "README.md"
        opened = manual.is_file() and QDesktopServices.openUrl(QUrl.fromLocalFile(str(manual)))
        if not opened:
            self.inform("Documentation", f"The manual is README.md, with more in docs/, in {APP_ROOT}.")
        return bool(opened)

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
        self.low_priority_action.setChecked(str(self.settings.value("training/low_priority", "false")) == "true")
        self.recognition.wide_check.setChecked(str(self.settings.value("canvas/wide", "false")) == "true")

    def save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("training/low_priority", "true" if self.low_priority_action.isChecked() else "false")
        self.settings.setValue("canvas/wide", "true" if self.recognition.wide_check.isChecked() else "false")
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
        if not self.keep_or_discard_model("Quit"):
            event.ignore()
            return
        self._remember_unsaved(None)  # saved or discarded: nothing to offer next time
        # Nothing that waits for a data set may start once the window is gone: the app would quit with
        # that worker's thread still running, and abort. The other workers cannot be cancelled but are
        # bounded: a warm-up a second, an export a second or two, a checkpoint by its size limits.
        self.loader.shutdown()
        for job in (self.warm_up, self.exporting, self.opening, self.teaching):
            job.wait()
        self.evaluation.shutdown()
        self.runs_view.shutdown()
        self.save_settings()
        self.garbage_collector.stop()  # every worker has finished: collection may run anywhere again
        event.accept()


def _vertical_scroll(panel: QWidget) -> QScrollArea:
    scroll = QScrollArea()
    scroll.setWidget(panel)
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setMinimumWidth(panel.minimumSizeHint().width() + 24)
    return scroll


def last_accuracy(checkpoint: ckpt.Checkpoint) -> float:
    return float(checkpoint.history.epochs[-1]["test_accuracy"]) if checkpoint.history.epochs else 0.0


def at_chance(checkpoint: ckpt.Checkpoint) -> bool:
    """Whether a model's last test accuracy is no better than guessing (within half of chance's share)."""
    return bool(checkpoint.history.epochs) and last_accuracy(checkpoint) <= 1.5 / len(checkpoint.class_names)


def open_main_window() -> MainWindow:
    """The app's window, shown (gui.app runs the event loop around it)."""
    window = MainWindow()
    window.show()
    return window


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


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"
