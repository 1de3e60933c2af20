"""The Runs tab: every recorded training run (engine.runs) in a sortable table, and the selected runs'
curves overlaid for comparison.

Name and note are edited in the table. The plots overlay the selected runs' training loss (with an
exponential moving average, as TensorBoard's smoothing slider) and test accuracy, against the step, the
epoch or the wall time. Export writes a CSV with one row per selected run and the plots as a PNG.
The view shows and collects; what needs the window (opening a run's model, confirming a delete) it asks
for with signals. The store is read and written by a worker (the view's ``store_job``), one task at a
time, never on the GUI thread: its files are anything anyone put there.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSlider,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from scipy.signal import lfilter

from engine.files import atomic_write
from engine.runs import Curves, Run, delete_run, list_runs, read_curves, record_checkpoint, update_run
from gui import figures
from gui.dialogs import Dialogs
from gui.image_files import save_png
from gui.loss_plot import GridAxis, LogAxis, _style
from gui.workers import Job, RunStoreWorker

COLUMNS = ("Name", "Started", "Model", "Data set", "Epochs", "Accuracy", "Best", "Time (s)", "Device", "Status", "Note")
EDITABLE = {0: "name", 10: "note"}
COLOURS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]
LEGEND_CHARS = 32  # a longer run name is cut in the legend, which would otherwise cover the curves
AXES = {"step": "step", "epoch": "epoch", "wall time (s)": "seconds"}


class NumberItem(QTableWidgetItem):
    """A cell that sorts by its number, not its text ("10" after "9"); empty cells first."""

    def __init__(self, value: float | None, text: str) -> None:
        super().__init__(text)
        self.value = -np.inf if value is None else float(value)
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        return self.value < other.value if isinstance(other, NumberItem) else super().__lt__(other)


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average, debiased at the start."""
    if weight <= 0 or len(values) == 0:
        return values
    averaged = lfilter([1 - weight], [1, -weight], values)
    return averaged / (1 - weight ** np.arange(1, len(values) + 1))


class RunsView(QWidget):
    """``open_requested`` carries a checkpoint path to open; ``message`` a line for the status bar;
    ``refreshed`` that the table shows the store as just read. Deleting asks first, through ``dialogs``."""

    open_requested = Signal(str)
    export_requested = Signal()
    message = Signal(str)
    refreshed = Signal()

    def __init__(self, store: Path, owned: list[Path], dialogs: Dialogs, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store, self.owned, self.dialogs = store, owned, dialogs
        self.runs: list[Run] = []
        self._curves: dict[str, Curves] = {}
        self._shown: list[tuple[str, str]] = []  # the runs whose curves are drawn, and their legend names
        self._items_shown: list[tuple[Run, Any, Any]] = []
        self._filling = False
        self.store_job = Job(self)  # one task at a time; what is asked meanwhile runs when it ends
        self.store_job.finished.connect(self._run_next)
        self._asked: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {}  # kind: task, its slot

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self._build_table())
        splitter.addWidget(self._build_plots())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)
        self._update_buttons()

    def _build_table(self) -> QWidget:
        """The runs, a row each, under Refresh, Open, Delete... and Export..., over the summary line."""
        self.table = QTableWidget(0, len(COLUMNS), objectName="runsTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSortingEnabled(True)
        self.table.itemSelectionChanged.connect(self.redraw)
        self.table.itemChanged.connect(self._edited)
        self.refresh_button = QPushButton("Refresh", objectName="refreshRunsButton")
        self.refresh_button.setToolTip("Read the run records again (runs the CLI trained meanwhile too)")
        self.open_button = QPushButton("Open", objectName="openRunButton")
        self.open_button.setToolTip("Open the selected run's last saved checkpoint as the model on hand")
        self.delete_button = QPushButton("Delete...", objectName="deleteRunsButton")
        self.delete_button.setToolTip("Delete the selected runs' records and their autosaved checkpoints")
        self.export_button = QPushButton("Export...", objectName="exportRunsButton")
        self.export_button.setToolTip("A CSV with a row per selected run, and the plots as a PNG beside it")
        self.refresh_button.clicked.connect(self.refresh)
        self.open_button.clicked.connect(self._open_selected)
        self.delete_button.clicked.connect(lambda: self.delete(self.selected_runs()))
        self.export_button.clicked.connect(self.export_requested)
        self.summary = QLabel("", objectName="runsSummary")
        buttons = QHBoxLayout()
        for widget in (self.refresh_button, self.open_button, self.delete_button, self.export_button):
            buttons.addWidget(widget)
        buttons.addStretch(1)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addLayout(buttons)
        top_layout.addWidget(self.table, 1)
        top_layout.addWidget(self.summary)
        return top

    def _build_plots(self) -> QWidget:
        """The selected runs' loss and test accuracy, against the x axis chosen, the loss smoothed."""
        self.axis_combo = QComboBox(objectName="runsAxisCombo")
        self.axis_combo.setToolTip("The x axis of the plots: step, epoch or wall time")
        self.axis_combo.addItems(list(AXES))
        self.axis_combo.currentIndexChanged.connect(self.redraw)
        self.smoothing_slider = QSlider(Qt.Orientation.Horizontal, objectName="runsSmoothingSlider")
        self.smoothing_slider.setRange(0, 99)
        self.smoothing_slider.setValue(60)
        self.smoothing_slider.setToolTip("Smoothing of the loss: an exponential moving average, as in TensorBoard")
        self.smoothing_slider.valueChanged.connect(self.redraw)
        self.loss_plot = pg.PlotWidget(axisItems={"left": LogAxis("left"), "bottom": GridAxis("bottom")})
        _style(self.loss_plot, "training loss", "step")
        self.loss_plot.setLogMode(y=True)
        self.accuracy_plot = pg.PlotWidget(axisItems={"left": GridAxis("left"), "bottom": GridAxis("bottom")})
        _style(self.accuracy_plot, "test accuracy (%)", "step", legend_offset=(-10, -10))
        controls = QHBoxLayout()
        controls.addWidget(QLabel("x"))
        controls.addWidget(self.axis_combo)
        controls.addWidget(QLabel("Smoothing"))
        controls.addWidget(self.smoothing_slider, 1)
        plots = QWidget()
        plots_layout = QVBoxLayout(plots)
        plots_layout.setContentsMargins(0, 0, 0, 0)
        plots_layout.addLayout(controls)
        plots_layout.addWidget(self.loss_plot, 3)
        plots_layout.addWidget(self.accuracy_plot, 2)
        return plots

    # -- the table ------------------------------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        """Opening the tab reads the store: runs the command line trained meanwhile appear."""
        super().showEvent(event)
        self.refresh()

    def refresh(self) -> None:
        """Read the store again, in the background (``refreshed`` says when the table shows it)."""
        self._ask("list", partial(list_runs, self.store), self._show_runs)

    def record_checkpoint(self, autosave: Path, saved: Path) -> None:
        """Add a Save of a run's model to that run's record, in the background."""
        self._ask(f"record {saved}", partial(record_checkpoint, self.store, autosave, saved), self._recorded)

    @property
    def busy(self) -> bool:
        """Whether a task on the store runs or waits to."""
        return self.store_job.running or bool(self._asked)

    def shutdown(self) -> None:
        """Drop what waits and wait for the task that runs (bounded: the engine reads with size caps)."""
        self._asked.clear()
        self.store_job.wait()

    def _ask(self, kind: str, task: Callable[[], Any], slot: Callable[[Any], None]) -> None:
        self._asked.pop(kind, None)  # a newer ask of the same kind replaces one that waits
        self._asked[kind] = (task, slot)
        self._run_next()

    @Slot()
    def _run_next(self) -> None:
        if self.store_job.running or not self._asked:
            return
        kind = next(iter(self._asked))
        task, slot = self._asked.pop(kind)
        self.store_job.start(RunStoreWorker(task), result=slot, failed=self._store_failed)

    @Slot(str)
    def _store_failed(self, message: str) -> None:
        self.message.emit(f"Cannot use the runs in {self.store}: {message}")

    @Slot(object)
    def _recorded(self, found: bool) -> None:
        if found and self.isVisible():
            self.refresh()

    @Slot(object)
    def _curves_read(self, curves: dict[str, Curves]) -> None:
        known = {run.id for run in self.runs}
        self._curves.update({key: value for key, value in curves.items() if key in known})
        self.redraw()

    @Slot(object)
    def _show_runs(self, runs: list[Run]) -> None:
        """Fill the table with the runs read (a damaged record is a row that says so); keep the selection."""
        selected = {run.id for run in self.selected_runs()}
        self.runs = runs
        self._curves.clear()
        self._shown = []
        self._filling = True
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(self.runs))
        for row, run in enumerate(self.runs):
            for column, item in enumerate(self._items(run)):
                item.setData(Qt.ItemDataRole.UserRole, run.id)
                if column not in EDITABLE or run.damaged:
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.table.setItem(row, column, item)
        self.table.setSortingEnabled(True)
        self._filling = False
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(Qt.ItemDataRole.UserRole) in selected:
                self.table.selectRow(row)
        damaged = sum(1 for run in self.runs if run.damaged)
        self.summary.setText(f"{len(self.runs)} runs in {self.store}" + (f"; {damaged} damaged" if damaged else ""))
        self.redraw()
        self.refreshed.emit()

    def _items(self, run: Run) -> list[QTableWidgetItem]:
        def percent(value: float | None) -> NumberItem:
            return NumberItem(value, "" if value is None else f"{100 * value:.2f}")

        return [
            QTableWidgetItem(run.name or (run.damaged and run.id) or run.title),
            QTableWidgetItem(run.started.replace("T", " ")),
            QTableWidgetItem(run.model),
            QTableWidgetItem(run.dataset),
            NumberItem(run.epochs_done, f"{run.epochs_done}/{run.total_epochs}" if run.total_epochs else ""),
            percent(run.final_accuracy),
            percent(run.best_accuracy),
            NumberItem(run.seconds, f"{run.seconds:.1f}"),
            QTableWidgetItem(run.device),
            QTableWidgetItem(f"damaged: {run.damaged}" if run.damaged else run.status),
            QTableWidgetItem(run.note),
        ]

    def selected_runs(self) -> list[Run]:
        ids = {
            self.table.item(index.row(), 0).data(Qt.ItemDataRole.UserRole)
            for index in self.table.selectionModel().selectedRows()
        }
        return [run for run in self.runs if run.id in ids]

    def _edited(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() not in EDITABLE:
            return
        run = next((r for r in self.runs if r.id == item.data(Qt.ItemDataRole.UserRole)), None)
        if run is None:
            return
        try:
            update_run(run, **{EDITABLE[item.column()]: item.text()})
        except (OSError, ValueError) as exc:
            self.message.emit(f"Cannot change {run.id}: {exc}")
            return
        self.redraw()

    def _open_selected(self) -> None:
        for run in self.selected_runs()[:1]:
            existing = [c for c in reversed(run.checkpoints) if Path(c).is_file()]
            if existing:
                self.open_requested.emit(existing[0])
            else:
                self.message.emit(f"{run.title}: its checkpoint is gone (deleted, or the run saved none)")

    def delete(self, runs: list[Run]) -> None:
        """Delete runs' records and their autosaved checkpoints, once the user has said yes."""
        if not runs:
            return
        names = ", ".join(run.title for run in runs[:3]) + (f" and {len(runs) - 3} more" if len(runs) > 3 else "")
        if not self.dialogs.confirm(
            "Delete runs",
            f"Delete {names}: the records and their autosaved checkpoints? Checkpoints you saved yourself are kept.",
        ):
            return
        for run in runs:
            delete_run(run, owned=self.owned)
        self.message.emit(f"Deleted {len(runs)} run{'s' if len(runs) != 1 else ''}")
        self.refresh()

    def _update_buttons(self) -> None:
        chosen = bool(self.table.selectionModel().selectedRows())
        for button in (self.open_button, self.delete_button, self.export_button):
            button.setEnabled(chosen)

    # -- the plots ------------------------------------------------------------------------------------------
    def redraw(self) -> None:
        """Overlay the selected runs' curves, a colour each, named in the legend. The plots' items are made
        again only when the selection changes; the x axis and the smoothing only set their data."""
        self._update_buttons()
        runs = [r for r in self.selected_runs() if not r.damaged]
        key = [(r.id, r.title) for r in runs]
        if key != self._shown:
            self._shown = key
            self._items_shown = []
            for plot in (self.loss_plot, self.accuracy_plot):
                plot.clear()
            for k, run in enumerate(runs):
                colour = COLOURS[k % len(COLOURS)]
                name = run.title if len(run.title) <= LEGEND_CHARS else run.title[: LEGEND_CHARS - 1] + "…"
                loss = self.loss_plot.plot(pen=pg.mkPen(colour, width=2), name=name)
                loss.setDownsampling(auto=True, method="peak")
                loss.setClipToView(True)
                accuracy = self.accuracy_plot.plot(
                    pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=6, symbolBrush=colour, name=name
                )
                self._items_shown.append((run, loss, accuracy))
        axis = AXES[self.axis_combo.currentText()]
        weight = self.smoothing_slider.value() / 100
        for plot in (self.loss_plot, self.accuracy_plot):
            plot.setLabel("bottom", self.axis_combo.currentText())
        unread = [run for run, _, _ in self._items_shown if run.id not in self._curves]
        if unread:  # drawn when read
            self._ask("curves", partial(_read_curves, unread), self._curves_read)
        for run, loss, accuracy in self._items_shown:
            curves = self._curves.get(run.id)
            if curves is None:
                continue
            keep = curves.loss > 0  # a log axis: a zero or NaN loss cannot be drawn
            loss.setData(getattr(curves, axis)[keep], smooth(curves.loss[keep], weight))
            epochs = [e for e in run.epochs if e.get("test_accuracy") is not None]
            accuracy.setData(
                np.array([self._epoch_x(curves, e, axis) for e in epochs], dtype=float),
                np.array([100 * e["test_accuracy"] for e in epochs], dtype=float),
            )

    @staticmethod
    def _epoch_x(curves: Curves, epoch: dict[str, Any], axis: str) -> float:
        """Where an epoch's end lies on the x axis: its epoch number, its time, or the last step before it."""
        if axis == "epoch":
            return float(epoch["epoch"])
        if axis == "seconds":
            return float(epoch.get("seconds") or 0.0)
        done = curves.step[curves.epoch <= epoch["epoch"] + 1e-9]
        return float(done[-1]) if len(done) else 0.0

    # -- export ---------------------------------------------------------------------------------------------
    def export(self, csv_path: Path) -> tuple[Path, Path]:
        """The selected runs as CSV rows (configuration and results) and the plots as a PNG beside it."""
        runs = self.selected_runs()
        keys = sorted({k for run in runs for k in run.config})
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(
            [
                "name",
                "id",
                "started",
                "status",
                "model",
                "dataset",
                "device",
                "epochs_done",
                "final_accuracy",
                "best_accuracy",
                "seconds",
                "note",
                *keys,
            ]
        )
        for run in runs:
            writer.writerow(
                [
                    run.title,
                    run.id,
                    run.started,
                    run.status,
                    run.model,
                    run.dataset,
                    run.device,
                    run.epochs_done,
                    run.final_accuracy,
                    run.best_accuracy,
                    round(run.seconds, 3),
                    run.note,
                    *(run.config.get(k, "") for k in keys),
                ]
            )
        text = buffer.getvalue()
        written = atomic_write(csv_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        picture = figures.page(
            "Runs compared",
            f"{len(runs)} run{'s' if len(runs) != 1 else ''}: "
            + ", ".join(run.title for run in runs[:4])
            + (" ..." if len(runs) > 4 else ""),
            [
                ("Training loss", figures.plot_image(self.loss_plot.getPlotItem())),
                ("Test accuracy (%)", figures.plot_image(self.accuracy_plot.getPlotItem())),
            ],
        )
        png = save_png(picture, csv_path.with_suffix(".png"))
        return written, png


def _read_curves(runs: list[Run]) -> dict[str, Curves]:
    return {run.id: read_curves(run) for run in runs}
