"""The main window: training on the left, plots and evaluation in the middle, recognition on the right.

The window builds the owners of the app's work and lays out the panels that show it, then connects the
two with signals. It holds no run or document state of its own:

- :class:`gui.document.CheckpointDocument`: the model on hand, Open, Save, recent files, restore;
- :class:`gui.training_session.TrainingSession`: a run, from Train to its end;
- :class:`gui.teacher.Teacher`: samples kept from the canvas, and teaching them;
- :class:`gui.exporter.Exporter`: the model, curves and tables written out;
- :class:`gui.datasets.DatasetLoader`: the data sets.

Its menus come from the action table (gui.actions), its settings from gui.settings.AppSettings, and
every question goes through one :class:`gui.dialogs.Dialogs`, which tests replace with a scripted one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QIcon, QShowEvent
from PySide6.QtWidgets import QLabel, QMainWindow, QSplitter, QTabWidget

from engine import checkpoint as ckpt
from engine.data import DATASETS
from engine.devices import list_devices
from engine.errors import UserError
from engine.events import epochs_text
from engine.inference import Predictor
from engine.runs import default_store
from gui import actions
from gui.app import APP_ICON
from gui.autosave import autosave_dir
from gui.dataset_browser import DatasetBrowser
from gui.datasets import DatasetLoader
from gui.dialogs import Dialogs
from gui.document import CheckpointDocument
from gui.draw_canvas import dropped_file
from gui.evaluation_view import EvaluationView
from gui.exporter import Exporter
from gui.garbage_collection import GuiThreadGarbageCollector
from gui.help import Help
from gui.layout import DEFAULT_SIZE, fitted_size, make_room_for_the_canvas, vertical_scroll
from gui.loss_plot import TrainingPlots
from gui.my_digits import MyDigitsView
from gui.prediction_panel import RecognitionPanel
from gui.recent_menu import fill_recent_menu
from gui.runs_view import RunsView
from gui.settings import AppSettings
from gui.teacher import Teacher
from gui.training_panel import TrainingPanel
from gui.training_session import TrainingSession
from gui.workers import Job, WarmUpWorker

APP_NAME = "Digit Studio"
WARM_UP_DELAY_MS = 300  # after the window is shown: its first layout and paint come first
CHECKPOINT_SUFFIXES = (".pt", ".pth")  # what a dropped file must be called to be opened as a checkpoint


class MainWindow(QMainWindow):
    """Build it with a QApplication present; ``show()`` gives the full app without entering the loop."""

    # For observers (tests, automation), on the GUI thread.
    dataset_loaded = Signal(object)
    download_progress = Signal(int, int)
    training_steps = Signal(object)  # list[StepEvent]
    training_epoch = Signal(object)  # EpochEvent
    training_finished = Signal(object)  # FinishedEvent, or None when a run failed
    checkpoint_opened = Signal(bool)  # whether the last open ended with the model on hand

    def __init__(self, settings: QSettings | AppSettings | None = None, dialogs: Dialogs | None = None) -> None:
        super().__init__()
        import torch

        torch.set_num_threads(1)  # the GUI thread only runs tiny models; see gui.workers.Worker
        # Workers allocate a lot; a cyclic collection they trigger must never destroy Qt objects there.
        self.garbage_collector = GuiThreadGarbageCollector(self)
        self.garbage_collector.start()
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(QIcon(str(APP_ICON)))
        self.setObjectName("mainWindow")
        self.settings = settings if isinstance(settings, AppSettings) else AppSettings(settings)
        self.dialogs = dialogs if dialogs is not None else Dialogs(self)
        self.loader = DatasetLoader(self)
        self.warm_up = Job(self)
        self.warm_up.finished.connect(self.garbage_collector.freeze)
        self._warm_up_scheduled = False
        self._build_panels()
        self.document = CheckpointDocument(self.settings, self.dialogs, self.loader.files, self)
        self.session = TrainingSession(
            self.document, self.loader, self.settings, self.dialogs, self.runs_view.store, self
        )
        self.teacher = Teacher(
            self.document, self.recognition, self.my_digits, self.dialogs, lambda: self.session.running, self
        )
        self.exporter = Exporter(self.document, self.plots, self.runs_view, self.settings, self.dialogs, self)
        self._build_layout()
        self.help = Help(
            self,
            self.dialogs,
            self.training_panel.device,
            lambda: getattr(self.document.model.predictor, "source", "no model"),
        )
        self.actions, self.menus = actions.build(self, self.settings)
        self.menus["recent"].aboutToShow.connect(self._fill_recent_menu)
        self._fill_recent_menu()
        self._connect()
        self._restore_settings()
        self.document.load_bundled()
        self._show_model()
        self._show_device()
        self._choose_dataset()

    # ------------------------------------------------------------------------------------------ construction
    def _build_panels(self) -> None:
        self.training_panel = TrainingPanel(list_devices())
        self.plots = TrainingPlots()
        self.recognition = RecognitionPanel()
        self.evaluation = EvaluationView(self.loader, self.settings, self.dialogs)
        self.browser = DatasetBrowser(self.loader)
        self.my_digits = MyDigitsView()
        self.runs_view = RunsView(default_store(), owned=[autosave_dir()], dialogs=self.dialogs)

    def _build_layout(self) -> None:
        self.tabs = QTabWidget(objectName="centerTabs")
        for view, title in (
            (self.plots, "Training"),
            (self.evaluation, "Evaluate"),
            (self.browser, "Data"),
            (self.my_digits, "My digits"),
            (self.runs_view, "Runs"),
        ):
            self.tabs.addTab(view, title)
        # The side panels scroll vertically, so the window fits a 1024x600 screen (tests/test_gui_layout.py)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, objectName="mainSplitter")
        for widget, stretch in (
            (vertical_scroll(self.training_panel), 0),
            (self.tabs, 3),
            (vertical_scroll(self.recognition), 2),
        ):
            self.splitter.addWidget(widget)
            self.splitter.setStretchFactor(self.splitter.count() - 1, stretch)
        self.splitter.setSizes([380, 620, 440])
        self.setCentralWidget(self.splitter)
        self.status_label, self.speed_label, self.device_label = (
            QLabel(text, objectName=name)
            for text, name in (("Ready", "statusMessage"), ("", "statusSpeed"), ("", "statusDevice"))
        )
        self.statusBar().addWidget(self.status_label, 1)
        for label in (self.speed_label, self.device_label):
            self.statusBar().addPermanentWidget(label)
        # A checkpoint file dropped anywhere opens: Qt offers a drag to the innermost widget that takes
        # drops, then to its parents while refused, and the canvas, plots and lists refuse checkpoints.
        self.setAcceptDrops(True)

    def _connect(self) -> None:
        panel, session, document, loader = self.training_panel, self.session, self.document, self.loader
        panel.train_requested.connect(self.start_training)
        panel.pause_toggled.connect(session.pause)
        panel.stop_requested.connect(session.stop)
        panel.open_folder_requested.connect(self.open_data_folder_dialog)
        panel.download_cancel_requested.connect(loader.cancel)
        panel.dataset_changed.connect(self._choose_dataset)
        panel.device_changed.connect(self._show_device)
        loader.status.connect(panel.show_dataset_status)
        loader.busy.connect(panel.show_download)
        loader.progress.connect(panel.show_download_progress)
        loader.progress.connect(self.download_progress)
        loader.loaded.connect(self.dataset_loaded)
        loader.failed.connect(lambda message: self.dialogs.error("Data set", message))
        loader.fell_back.connect(self._dataset_fell_back)
        for source in (loader.notice, document.status, session.status, self.teacher.status, self.exporter.status):
            source.connect(self.show_status)
        for view in (self.recognition, self.runs_view, self.my_digits, self.evaluation, self.browser):
            view.message.connect(self.show_status)
        panel.notice.connect(self.show_status)
        for view in (self.evaluation, self.browser):
            view.send_to_canvas.connect(self.recognition.show_array)
            view.error.connect(self.dialogs.error)
        self.evaluation.export_requested.connect(self.exporter.write)
        self.evaluation.evaluate_button.clicked.connect(lambda: self.tabs.setCurrentWidget(self.evaluation))
        self.recognition.labelled.connect(self.teacher.keep_sample)
        self.recognition.open_image_requested.connect(self.open_image_dialog)
        self.recognition.wide_changed.connect(lambda wide: make_room_for_the_canvas(self.splitter, wide))
        self.runs_view.open_requested.connect(document.open)
        self.runs_view.export_requested.connect(self.exporter.runs_dialog)
        self.my_digits.teach_requested.connect(self.teacher.teach)
        document.changed.connect(self._show_model)
        document.recent_changed.connect(self._fill_recent_menu)
        document.loaded.connect(self._checkpoint_loaded)
        document.opened.connect(self.checkpoint_opened)
        session.running_changed.connect(self._show_running)
        session.started.connect(self.plots.start_run)
        session.started.connect(lambda _: self.tabs.setCurrentWidget(self.plots))
        session.steps.connect(self.plots.add_steps)
        session.steps.connect(self.training_steps)
        session.epoch.connect(self.plots.add_epoch_event)
        session.epoch.connect(self.training_epoch)
        session.progress.connect(self._show_progress)
        session.finished.connect(self._run_finished)
        session.ended.connect(panel.show_progress_text)
        session.notice.connect(self._show_device)
        session.run_saved.connect(self.runs_view.record_checkpoint)

    # ------------------------------------------------------------------------------------------ showing
    @Slot(str)
    def show_status(self, text: str) -> None:
        self.status_label.setText(text)
        self.status_label.setToolTip(text)  # the whole of a message too long for the status bar

    @Slot(str)
    def _show_device(self, note: str = "") -> None:
        """The chosen device; a training notice stays here, as the tooltip, until the next run."""
        self.device_label.setText(f"Device: {self.training_panel.device()}" + (" (see note)" if note else ""))
        self.device_label.setToolTip(note)
        if note:
            self.show_status(f"Note: {note}")

    @Slot()
    def _show_model(self) -> None:
        """Everything that shows the model on hand follows it: the canvas, Evaluate, the title, Continue."""
        model = self.document.model
        if model.predictor is not None:
            self.recognition.set_predictor(model.predictor)
            self.evaluation.set_model(model.predictor, model.version)
        name = model.title()
        self.setWindowTitle(f"{name}[*] - {APP_NAME}" if name else APP_NAME)
        self.setWindowModified(not model.saved and bool(name))
        self.training_panel.follow_model(model)

    def set_predictor(self, predictor: Predictor) -> None:
        """Answer on the canvas with ``predictor`` (a model that is not the one on hand, for a try)."""
        self.recognition.set_predictor(predictor)
        self.evaluation.set_model(predictor, -1)

    @Slot()
    def _fill_recent_menu(self) -> None:
        fill_recent_menu(self.menus["recent"], self.document, enabled=self.actions["openCheckpointAction"].isEnabled())

    # ------------------------------------------------------------------------------------------ training
    def start_training(self) -> None:
        try:
            config = self.training_panel.config()
        except UserError as exc:
            self.dialogs.error("Training settings", str(exc))
            return
        self.session.start(config, self.training_panel.continuing())

    @Slot(bool)
    def _show_running(self, running: bool) -> None:
        """Lock what would change a run's data or model under it, from Train until the run has ended."""
        self.training_panel.set_running(running)
        for action in ("openCheckpointAction", "openDataFolderAction"):
            self.actions[action].setEnabled(not running)
        self._fill_recent_menu()
        self.training_panel.show_progress_text("loading data..." if running else "")
        if running:
            self._show_device()  # clears a previous run's note
        else:
            self.speed_label.setText("")

    @Slot(int, int, str, str)
    def _show_progress(self, step: int, total: int, text: str, speed: str) -> None:
        self.training_panel.show_run_progress(step, total, text or None)
        self.speed_label.setText(speed)

    @Slot(object)
    def _run_finished(self, event: Any) -> None:
        self.training_finished.emit(event)
        if self.runs_view.isVisible():
            self.runs_view.refresh()

    # ------------------------------------------------------------------------------------------ documents, data
    @Slot(object)
    def _checkpoint_loaded(self, loaded: ckpt.Checkpoint) -> None:
        """Its curves are shown; the training settings stay as they were until Continue is ticked."""
        self.plots.load_history(loaded.history.to_dict())
        self.show_status(f"Opened {loaded.display_name} ({loaded.architecture}, {epochs_text(loaded.epochs_done)})")

    @Slot()
    def _choose_dataset(self) -> None:
        self.loader.choose(*self.training_panel.dataset_choice())

    @Slot(str, str)
    def _dataset_fell_back(self, key: str, reason: str) -> None:
        """Offline (or every mirror failing): say so, use the built-in sample, offer a folder of one's own."""
        self.training_panel.select_dataset(key)
        message = (
            f"{reason}\n\nTraining goes on with {DATASETS[key].title} instead. To use the full set, connect "
            "to the internet and train again, or put its four IDX files in a folder and choose Open "
            "folder... (File > Open data folder)."
        )
        self.show_status(message.splitlines()[0])
        if self.dialogs.inform("Using the built-in sample", message, action="Open folder..."):
            self.open_data_folder_dialog()

    def open_data_folder_dialog(self) -> None:
        folder = self.dialogs.folder("Open data set folder (IDX files)", self.settings.data_dir)
        if folder:
            self.settings.data_dir = Path(folder)
            self.training_panel.add_folder(folder)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if dropped_file(event.mimeData(), CHECKPOINT_SUFFIXES) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        path = dropped_file(event.mimeData(), CHECKPOINT_SUFFIXES)
        if path is not None:
            event.acceptProposedAction()
            # once the drop has returned: a message box inside it would hold up the drag's source on some systems
            QTimer.singleShot(0, self, lambda: self.document.open(path))

    # ------------------------------------------------------------------------------------------ images
    @Slot()
    def open_image_dialog(self) -> None:
        path = self.dialogs.open_file(
            "Open image", self.settings.images_dir, "Images (*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp)"
        )
        if path:
            self.settings.images_dir = Path(path).parent
            self.recognition.open_image(path)

    # ------------------------------------------------------------------------------------------ lifetime
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._warm_up_scheduled:  # once the window is up: it must not wait for this
            self._warm_up_scheduled = True
            QTimer.singleShot(WARM_UP_DELAY_MS, self, self._warm_up)
            QTimer.singleShot(0, self, self.document.offer_restore)

    @Slot()
    def _warm_up(self) -> None:
        """The first training run's one-off start-up work, in the background (engine.cpu_tuning.warm_up).
        Collections are held meanwhile, and what it creates is then frozen (gui.garbage_collection)."""
        if not self.isVisible():  # closed before the timer fired
            return
        self.garbage_collector.hold()
        self.warm_up.start(WarmUpWorker(), failed=self.show_status)

    def _restore_settings(self) -> None:
        geometry = self.settings.geometry
        if not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(fitted_size(DEFAULT_SIZE, self.minimumSizeHint(), self.screen().availableGeometry().size()))
        self.training_panel.restore_settings(self.settings)
        self.recognition.wide_check.setChecked(self.settings.wide_canvas)

    def save_settings(self) -> None:
        self.settings.geometry = self.saveGeometry()
        self.settings.wide_canvas = self.recognition.wide_check.isChecked()
        self.training_panel.save_settings(self.settings)
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.session.running:
            kept = (
                "The last completed epoch is kept in the autosaved checkpoint."
                if self.session.autosave_path
                else "This run cannot autosave (see the note on the device): Save first to keep its model."
            )
            if not self.dialogs.confirm("Training is running", f"Stop training and quit? {kept}"):
                event.ignore()
                return
            self.session.stop(wait=True)
        if not self.document.keep_or_discard("Quit"):
            event.ignore()
            return
        self.document.remember_unsaved(None)  # saved or discarded: nothing to offer next time
        # Nothing that waits for a data set may start once the window is gone: the app would quit with
        # that worker's thread still running, and abort. The other workers are bounded.
        self.loader.shutdown()
        self.warm_up.wait()
        for owner in (self.exporter, self.document, self.teacher, self.evaluation, self.runs_view):
            owner.shutdown()
        self.save_settings()
        self.garbage_collector.stop()  # every worker has finished: collection may run anywhere again
        event.accept()


def open_main_window() -> MainWindow:
    """The app's window, shown (gui.app runs the event loop around it)."""
    window = MainWindow()
    window.show()
    return window
