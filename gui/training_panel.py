"""The training side's controls: data set, model, hyper-parameters, device, Train/Pause/Stop, progress.

The panel only shows and collects values and emits signals; the window decides what happens.
Every value has a range or a fixed list of choices, so invalid values cannot be entered.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.checkpoint import Checkpoint
from engine.config import OPTIMIZERS, SCHEDULES, TrainConfig
from engine.data import DATASETS, locate
from engine.devices import DeviceInfo, best_device
from engine.errors import UserError
from engine.models import MODELS, build_model, model_spec, parameter_count
from gui.model_on_hand import ModelOnHand
from gui.settings import AppSettings

FOLDER_ITEM = "folder"


class TrainingPanel(QWidget):
    train_requested = Signal()
    pause_toggled = Signal(bool)  # True: pause, False: resume
    stop_requested = Signal()
    open_folder_requested = Signal()
    download_cancel_requested = Signal()
    dataset_changed = Signal()
    device_changed = Signal()
    notice = Signal(str)  # for the status line

    def __init__(self, devices: tuple[DeviceInfo, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._can_resume = False
        self._running = False
        self._resume_config: TrainConfig | None = None  # the settings of the model Continue continues
        self._resume_checkpoint: Checkpoint | None = None  # that model, for the data set it was trained on
        self._build_model_fields(devices)
        layout = QVBoxLayout(self)
        for box in (self._build_data_box(), self._build_model_box(), self._build_run_box()):
            layout.addWidget(box)
        layout.addStretch(1)
        self.set_defaults(TrainConfig())
        self.set_running(False)
        self.set_resumable(False)

    def _build_data_box(self) -> QGroupBox:
        self.dataset_combo = _shrinkable_combo("datasetCombo")
        for key, spec in DATASETS.items():
            self.dataset_combo.addItem(spec.title, key)
        self.dataset_combo.setToolTip(
            "The images to train and evaluate on; a known data set that is not on this "
            "computer is downloaded when needed"
        )
        self.dataset_combo.currentIndexChanged.connect(lambda _: self.dataset_changed.emit())
        self.open_folder_button = QPushButton("Open folder...", objectName="openDataButton")
        self.open_folder_button.setToolTip("Use IDX files (train-images-idx3-ubyte[.gz] ...) from a folder")
        self.open_folder_button.clicked.connect(self.open_folder_requested)
        self.dataset_status = QLabel("", objectName="datasetStatus")
        self.dataset_status.setWordWrap(True)
        # room for three lines whatever it says, so the form below does not jump as the text changes
        self.dataset_status.setMinimumHeight(3 * self.dataset_status.fontMetrics().lineSpacing())
        self.dataset_status.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.download_progress = QProgressBar(objectName="downloadProgress")
        self.download_progress.setVisible(False)
        self.cancel_download_button = QPushButton("Cancel", objectName="cancelDownloadButton")
        self.cancel_download_button.setVisible(False)
        self.cancel_download_button.clicked.connect(self.download_cancel_requested)
        data_box = QGroupBox("Data set")
        data_layout = QVBoxLayout(data_box)
        row = QHBoxLayout()
        row.addWidget(self.dataset_combo, 1)
        row.addWidget(self.open_folder_button)
        data_layout.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.download_progress, 1)
        row.addWidget(self.cancel_download_button)
        data_layout.addLayout(row)
        data_layout.addWidget(self.dataset_status)
        return data_box

    def _build_model_fields(self, devices: tuple[DeviceInfo, ...]) -> None:
        self.model_combo = _shrinkable_combo("modelCombo")
        for name, spec in MODELS.items():
            self.model_combo.addItem(f"{name} ({parameter_count(build_model(name)):,} parameters)", name)
            self.model_combo.setItemData(self.model_combo.count() - 1, spec.description, 3)  # tooltip role
        self.model_combo.currentIndexChanged.connect(self._apply_recipe)
        self.epochs_spin = _int_spin("epochsSpin", 1, 1000)
        self.batch_spin = _int_spin("batchSizeSpin", 1, 8192)
        self.lr_spin = _float_spin("learningRateSpin", 0.00001, 10.0, 0.0005, decimals=5)
        self.optimizer_combo = QComboBox(objectName="optimizerCombo")
        self.optimizer_combo.addItems(list(OPTIMIZERS))
        self.momentum_spin = _float_spin("momentumSpin", 0.0, 0.999, 0.01, decimals=3)
        self.weight_decay_spin = _float_spin("weightDecaySpin", 0.0, 1.0, 0.0001, decimals=5)
        self.schedule_combo = QComboBox(objectName="scheduleCombo")
        self.schedule_combo.addItems(list(SCHEDULES))
        self.augment_check = QCheckBox("Augment training images", objectName="augmentCheck")
        self.augment_check.setToolTip(
            "Random rotation, scale, shift, elastic distortion and stroke width, "
            "so the model copes with digits drawn on the canvas"
        )
        self.seed_spin = _int_spin("seedSpin", 0, 2**31 - 1)
        self.device_combo = _shrinkable_combo("deviceCombo")
        self.device_combo.currentIndexChanged.connect(lambda _: self.device_changed.emit())
        for device in devices:
            self.device_combo.addItem(f"{device.name} - {device.description}", device.name)
        # a GPU where there is one, as the command line's auto (a remembered choice replaces it)
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(best_device(devices))))
        tips = {
            self.model_combo: "The network to train; choosing one loads the settings it trains well with",
            self.epochs_spin: "Passes over the training images (with Continue ticked: how many more)",
            self.batch_spin: "Images per optimiser step: larger batches train more images a second, but each "
            "image counts for less, so they may need more epochs",
            self.lr_spin: "The optimiser's step size; with the onecycle schedule, its peak",
            self.optimizer_combo: "sgd: stochastic gradient descent with momentum; adam: adaptive steps per "
            "weight; adamw: adam with the weight decay kept apart from the gradients",
            self.momentum_spin: "sgd's momentum, or adam's beta1: how much of the past gradients each step keeps",
            self.weight_decay_spin: "Pulls the weights towards zero a little at every step, against "
            "overfitting (0: none)",
            self.schedule_combo: "How the learning rate moves during the run: none (constant); step (x0.7 "
            "each epoch); cosine (down to 0); onecycle (up over the first quarter, "
            "then down)",
            self.seed_spin: "Seeds the first weights, the shuffling and the augmentation: the same seed and "
            "settings repeat a run",
            self.device_combo: "Where the training runs: only the devices this computer has are listed",
        }
        for widget, tip in tips.items():
            widget.setToolTip(tip)

    def _build_model_box(self) -> QGroupBox:
        model_box = QGroupBox("Model and training")
        form = QFormLayout(model_box)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)  # label above its field when narrow
        form.addRow("Model", self.model_combo)
        self.epochs_label = QLabel("Epochs")
        form.addRow(self.epochs_label, self.epochs_spin)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("Learning rate", self.lr_spin)
        form.addRow("Optimizer", self.optimizer_combo)
        form.addRow("Momentum / beta1", self.momentum_spin)
        form.addRow("Weight decay", self.weight_decay_spin)
        form.addRow("LR schedule", self.schedule_combo)
        form.addRow("", self.augment_check)
        form.addRow("Seed", self.seed_spin)
        form.addRow("Device", self.device_combo)
        self.settings_note = QLabel("", objectName="settingsNote")  # a value Qt had to limit, said in red
        self.settings_note.setWordWrap(True)
        self.settings_note.setStyleSheet("color: #b00020")
        self.settings_note.setVisible(False)
        form.addRow(self.settings_note)
        for spin, name in (
            (self.epochs_spin, "Epochs"),
            (self.batch_spin, "Batch size"),
            (self.lr_spin, "Learning rate"),
            (self.momentum_spin, "Momentum"),
            (self.weight_decay_spin, "Weight decay"),
            (self.seed_spin, "Seed"),
        ):
            spin.setAccessibleName(name)
            spin.limited.connect(self._show_limited)
            spin.lineEdit().textEdited.connect(lambda _: self.settings_note.setVisible(False))
        return model_box

    def _build_run_box(self) -> QGroupBox:
        self.train_button = QPushButton("Train", objectName="trainButton")
        self.train_button.setDefault(True)
        self.pause_button = QPushButton("Pause", objectName="pauseButton")
        self.pause_button.setCheckable(True)
        self.stop_button = QPushButton("Stop", objectName="stopButton")
        self.resume_check = QCheckBox("Continue training the current model", objectName="resumeCheck")
        self.resume_check.toggled.connect(self._on_resume_toggled)
        self.train_button.clicked.connect(self.train_requested)
        self.pause_button.toggled.connect(self._on_pause_toggled)
        self.stop_button.clicked.connect(self.stop_requested)
        self.progress = QProgressBar(objectName="trainingProgress")
        self.progress.setFormat("idle")
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        run_box = QGroupBox("Run")
        run_layout = QVBoxLayout(run_box)
        buttons = QHBoxLayout()
        for button in (self.train_button, self.pause_button, self.stop_button):
            buttons.addWidget(button)
        run_layout.addWidget(self.resume_check)
        run_layout.addLayout(buttons)
        run_layout.addWidget(self.progress)
        return run_box

    # -- values ---------------------------------------------------------------------------------------------
    def set_defaults(self, config: TrainConfig) -> None:
        self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(config.model)))
        # a batch-norm model cannot train on a batch of one image (engine.models.ModelSpec.min_batch_size)
        self.batch_spin.setMinimum(model_spec(self.model_combo.currentData()).min_batch_size)
        self.epochs_spin.setValue(config.epochs)
        self.batch_spin.setValue(config.batch_size)
        self.lr_spin.setValue(config.lr)
        self.optimizer_combo.setCurrentText(config.optimizer)
        self.momentum_spin.setValue(config.momentum)
        self.weight_decay_spin.setValue(config.weight_decay)
        self.schedule_combo.setCurrentText(config.schedule)
        self.augment_check.setChecked(config.augment)
        self.seed_spin.setValue(config.seed)

    def _apply_recipe(self) -> None:
        """Choosing a model loads its recipe (batch size, optimiser, augmentation...); epochs, seed and
        device stay as the user set them."""
        model = self.model_combo.currentData()
        if model is None or not hasattr(self, "device_combo"):
            return
        recipe = TrainConfig.for_model(model, epochs=self.epochs_spin.value(), seed=self.seed_spin.value())
        self.set_defaults(recipe)

    def config(self) -> TrainConfig:
        return replace(
            TrainConfig(),
            model=self.model_combo.currentData(),
            epochs=self.epochs_spin.value(),
            batch_size=self.batch_spin.value(),
            lr=self.lr_spin.value(),
            optimizer=self.optimizer_combo.currentText(),
            momentum=self.momentum_spin.value(),
            weight_decay=self.weight_decay_spin.value(),
            schedule=self.schedule_combo.currentText(),
            augment=self.augment_check.isChecked(),
            seed=self.seed_spin.value(),
            device=self.device(),
        ).validate()

    def device(self) -> str:
        return self.device_combo.currentData() or "cpu"

    def dataset_choice(self) -> tuple[str, str | None]:
        """(data set name, folder or None)."""
        data = self.dataset_combo.currentData()
        if isinstance(data, tuple) and data[0] == FOLDER_ITEM:
            return "mnist", data[1]
        return data, None

    def select_dataset(self, name: str) -> bool:
        """Choose the known data set ``name``; False if there is none of that name."""
        index = self.dataset_combo.findData(name)
        if index < 0:
            return False
        self.dataset_combo.setCurrentIndex(index)
        return True

    def add_folder(self, folder: str, select: bool = True) -> None:
        # not findData: Qt compares Python objects held in item data by identity, never equal to a new tuple
        combo = self.dataset_combo
        index = next((i for i in range(combo.count()) if combo.itemData(i) == (FOLDER_ITEM, folder)), -1)
        if index < 0:
            self.dataset_combo.addItem(f"Folder: {folder}", (FOLDER_ITEM, folder))
            index = self.dataset_combo.count() - 1
        if select:
            self.dataset_combo.setCurrentIndex(index)

    def folders(self) -> list[str]:
        """The data folders opened, in the order they were added."""
        items = (self.dataset_combo.itemData(i) for i in range(self.dataset_combo.count()))
        return [data[1] for data in items if isinstance(data, tuple) and data[0] == FOLDER_ITEM]

    # -- state ----------------------------------------------------------------------------------------------
    def _recipe_widgets(self) -> tuple[QWidget, ...]:
        """What a continued run takes from its checkpoint rather than from the panel."""
        return (
            self.model_combo,
            self.batch_spin,
            self.lr_spin,
            self.optimizer_combo,
            self.momentum_spin,
            self.weight_decay_spin,
            self.schedule_combo,
            self.augment_check,
            self.seed_spin,
        )

    def set_running(self, running: bool) -> None:
        self._running = running
        for widget in (
            self.train_button,
            self.dataset_combo,
            self.open_folder_button,
            self.epochs_spin,
            self.device_combo,
        ):
            widget.setEnabled(not running)
        continuing = self.resume_check.isChecked()
        for widget in self._recipe_widgets():
            widget.setEnabled(not running and not continuing)
        self.resume_check.setEnabled(not running and self._can_resume)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        if not running:
            self.pause_button.blockSignals(True)
            self.pause_button.setChecked(False)
            self.pause_button.setText("Pause")
            self.pause_button.blockSignals(False)

    def follow_model(self, model: ModelOnHand) -> None:
        """Continue offers the model on hand, with its settings and data set; the fields change only when
        Continue is ticked: opening a model never changes what the next new run trains."""
        source = model.resume_source()
        self._resume_checkpoint = source
        self.set_resumable(
            source is not None,
            model.description(),
            source.config if source is not None else None,
            checked=self.continuing() and source is not None,
        )

    def set_resumable(
        self, resumable: bool, description: str = "", config: TrainConfig | None = None, checked: bool = False
    ) -> None:
        """Offer Continue for the model on hand (a finished run or an opened checkpoint): ``config`` is its
        settings, which a continued run keeps; ``checked`` leaves Continue ticked."""
        self._can_resume = resumable
        self._resume_config = config if resumable else None
        self.resume_check.setChecked(checked and resumable)
        self.resume_check.setEnabled(resumable and not self._running)
        self.resume_check.setToolTip(
            f"{description}. Continuing keeps its model and settings (greyed out meanwhile); choose how many "
            "more epochs, the device and the data set"
            if description
            else "Train a model or open a checkpoint (File > Open) to continue its training"
        )

    def _on_resume_toggled(self, continuing: bool) -> None:
        """Continuing shows, and locks, the checkpoint's settings: the run takes them from the checkpoint,
        so edits here would be silently ignored."""
        self.epochs_label.setText("More epochs" if continuing else "Epochs")
        if continuing and self._resume_config is not None:
            self.set_defaults(replace(self._resume_config, epochs=self.epochs_spin.value()))
            switched = self.select_dataset_of(self._resume_checkpoint) if self._resume_checkpoint else None
            if switched:
                self.notice.emit(f"Data set switched to {switched}, which the model was trained on")
        self.set_running(self._running)

    def _on_pause_toggled(self, paused: bool) -> None:
        self.pause_button.setText("Resume" if paused else "Pause")
        self.pause_toggled.emit(paused)

    @Slot(str)
    def _show_limited(self, message: str) -> None:
        self.settings_note.setText(message)
        self.settings_note.setVisible(True)

    def continuing(self) -> bool:
        """Whether Train is to continue the model on hand rather than start a new one."""
        return self.resume_check.isChecked()

    @Slot(bool)
    def show_download(self, visible: bool) -> None:
        self.download_progress.setVisible(visible)
        self.cancel_download_button.setVisible(visible)
        if visible:
            self.download_progress.setRange(0, 0)

    @Slot(int, int)
    def show_download_progress(self, done: int, total: int) -> None:
        if total > 0:
            self.download_progress.setRange(0, 1000)
            self.download_progress.setValue(int(1000 * done / total))
            self.download_progress.setFormat(f"Downloading {done / 2**20:.1f} / {total / 2**20:.1f} MB")

    @Slot(str)
    def show_dataset_status(self, text: str) -> None:
        self.dataset_status.setText(text)

    def show_run_progress(self, step: int, total_steps: int | None = None, text: str | None = None) -> None:
        """The run's progress bar at ``step`` (of ``total_steps``, when it changes), captioned ``text``."""
        if total_steps is not None:
            self.progress.setRange(0, total_steps)
        self.progress.setValue(step)
        if text is not None:
            self.progress.setFormat(text)

    def show_progress_text(self, text: str) -> None:
        """The run bar's caption alone ("loading data...", "finished: 3 epochs"); empty keeps the last one."""
        if text:
            self.progress.setFormat(text)

    # -- settings -------------------------------------------------------------------------------------------
    def save_settings(self, settings: AppSettings) -> None:
        name, folder = self.dataset_choice()
        settings.data_folders = self.folders()
        settings.dataset = name
        settings.data_folder = folder or ""
        settings.device = self.device()
        try:
            settings.training_config = self.config().to_dict()
        except UserError:  # a value out of range: the last good settings stay
            pass

    def restore_settings(self, settings: AppSettings) -> None:
        """The last session's data set choice (opened folders that still exist come back too), training
        settings and device."""
        for folder in settings.data_folders:
            if Path(folder).is_dir():
                self.add_folder(folder, select=False)
        folder = settings.data_folder
        if folder and Path(folder).is_dir():
            self.add_folder(folder)
        elif not folder:
            self.select_dataset(settings.dataset)
        saved = settings.training_config
        if saved:
            try:
                self.set_defaults(TrainConfig.from_dict(_typed(saved)).validate())
            except Exception:  # settings from another version: keep the defaults
                pass
        index = self.device_combo.findData(settings.device)
        if index >= 0:
            self.device_combo.setCurrentIndex(index)

    def select_dataset_of(self, loaded: Checkpoint) -> str | None:
        """Choose the data set a checkpoint was trained on, so that Evaluate and Continue use it: the
        folder its data came from, where that still holds the files and is not where the data set's name
        leads anyway; else the known data set of that name.

        Only when no folder is chosen: a folder the user opened stays chosen (its files may be the same
        set). No run is on: a run locks opening checkpoints. Returns what was chosen, if anything.
        """
        name, folder = self.dataset_choice()
        if folder is not None:
            return None
        spec = DATASETS.get(loaded.dataset_name)
        recorded = loaded.data_folder()
        if recorded is not None:
            found = locate(spec.key) if spec is not None else None
            if found is None or found.resolve() != recorded.resolve():
                self.add_folder(str(recorded))
                return f"the folder {recorded}"
        if spec is None or name == spec.key:
            return None
        return spec.title if self.select_dataset(spec.key) else None


def _shrinkable_combo(name: str) -> QComboBox:
    """A combo box that may be narrower than its longest item (a data folder's path, a GPU's name): the
    item is elided in the box and shown whole in the list, so the panel fits a laptop screen."""
    combo = QComboBox(objectName=name)
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(8)
    return combo


class _SaysWhenLimited:
    """A spin box that says when it limits a typed value (Qt would silently put its limit in its place):
    ``limited`` carries the message, e.g. that a learning rate of 50 was set to the largest, 10."""

    def validate(self, text: str, pos: int) -> object:
        """A number out of range stays in the box (Qt drops the keystroke that leaves the range, so typing
        50 into a box that goes up to 10 gave 5), to be limited, and said so, when editing ends."""
        result = super().validate(text, pos)
        state = result[0] if isinstance(result, tuple) else result
        if state == QValidator.State.Invalid:
            try:
                float(text.strip().replace(",", "."))
            except ValueError:
                return result
            return (QValidator.State.Intermediate, text, pos)
        return result

    def fixup(self, text: str) -> str:  # called by Qt for input it cannot take as it is
        typed = text.strip().replace(",", ".")
        try:
            value = float(typed)
        except ValueError:
            return super().fixup(text)
        low, high = self.minimum(), self.maximum()
        if not low <= value <= high:
            limit = high if value > high else low
            self.limited.emit(
                f"{self.accessibleName() or self.objectName()}: {typed} is out of range "
                f"({self.textFromValue(low)} to {self.textFromValue(high)}); set to "
                f"{self.textFromValue(limit)}"
            )
            return self.textFromValue(limit)
        return super().fixup(text)


class LimitedSpinBox(_SaysWhenLimited, QSpinBox):
    limited = Signal(str)


class LimitedDoubleSpinBox(_SaysWhenLimited, QDoubleSpinBox):
    limited = Signal(str)


def _int_spin(name: str, low: int, high: int) -> QSpinBox:
    spin = LimitedSpinBox(objectName=name)
    spin.setRange(low, high)
    return spin


def _float_spin(name: str, low: float, high: float, step: float, decimals: int) -> QDoubleSpinBox:
    spin = LimitedDoubleSpinBox(objectName=name)
    spin.setDecimals(decimals)
    spin.setRange(low, high)
    spin.setSingleStep(step)
    return spin


def _typed(values: dict) -> dict:
    """QSettings may hand back strings on some platforms; restore the dataclass field types."""
    defaults = TrainConfig().to_dict()
    typed = {}
    for key, value in values.items():
        if key not in defaults:
            continue
        kind = type(defaults[key])
        if kind is bool and isinstance(value, str):
            typed[key] = value.lower() == "true"
        else:
            typed[key] = kind(value)
    return typed
