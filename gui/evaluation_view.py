"""The Evaluate view: accuracy, per-class accuracy, a clickable confusion matrix and a gallery of mistakes.

Evaluation runs on a worker over a private copy of the model answering on the canvas (bundled default,
loaded checkpoint or the latest training snapshot), through :func:`engine.evaluation.evaluate`, the
same function as the CLI's ``evaluate``.
"""

from __future__ import annotations

import copy
import html
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal, Slot
from PySide6.QtGui import QBrush, QColor, QFontMetrics, QIcon, QImage, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.data import check_classes
from engine.errors import UserError
from engine.evaluation import EvaluationResult, abbreviate, write_csv
from gui import figures
from gui.dialogs import Dialogs, ask_export_path
from gui.image_files import save_png
from gui.settings import AppSettings
from gui.workers import EvaluationWorker, Job

THUMB = 56
GALLERY_LIMIT = 500  # images shown at once: more would take seconds to build and no one pages through them


def digit_icon(image: np.ndarray, size: int = THUMB) -> QIcon:
    """A 28x28 uint8 data set image (ink bright) as a dark-on-white icon."""
    pixels = np.ascontiguousarray(255 - image.astype(np.uint8))
    qimage = QImage(
        pixels.data, pixels.shape[1], pixels.shape[0], pixels.shape[1], QImage.Format.Format_Grayscale8
    ).copy()
    return QIcon(
        QPixmap.fromImage(qimage).scaled(
            size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
        )
    )


def make_gallery(name: str) -> QListWidget:
    gallery = QListWidget(objectName=name)
    gallery.setViewMode(QListView.ViewMode.IconMode)
    gallery.setIconSize(QSize(THUMB, THUMB))
    gallery.setGridSize(QSize(THUMB + 30, THUMB + 40))
    gallery.setWordWrap(True)
    gallery.setResizeMode(QListView.ResizeMode.Adjust)
    gallery.setMovement(QListView.Movement.Static)
    gallery.setUniformItemSizes(True)
    return gallery


class CountMatrix(QTableWidget):
    """The confusion matrix: stretched cells whose counts keep every digit in a narrow window.

    MNIST has over 1,000 test images of some classes, and a 4-digit count in a 30-pixel cell (a 1280-pixel
    wide laptop screen) was shown elided, as "1...". The cells' font shrinks instead, to a floor of
    ``MIN_POINT_SIZE``, and grows back to the table's own size when there is room.
    """

    MIN_POINT_SIZE = 6.5
    CELL_PADDING = 8  # pixels the cell's frame and margins take from the text's width

    def __init__(self, rows: int, columns: int, **kwargs: Any) -> None:
        super().__init__(rows, columns, **kwargs)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.cell_point_size = self.font().pointSizeF()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.fit_counts()

    def fit_counts(self) -> None:
        """Give every item the largest font, up to the table's own, in which the widest count fits a cell."""
        items = [self.item(r, c) for r in range(self.rowCount()) for c in range(self.columnCount())]
        items = [item for item in items if item is not None]
        if not items:
            return
        font = self.font()
        if font.pointSizeF() <= 0:  # a font sized in pixels: left as it is
            return
        widest = max((item.text() for item in items), key=len)
        room = self.viewport().width() / max(self.columnCount(), 1) - self.CELL_PADDING
        while font.pointSizeF() - 0.5 >= self.MIN_POINT_SIZE and QFontMetrics(font).horizontalAdvance(widest) > room:
            font.setPointSizeF(font.pointSizeF() - 0.5)
        self.cell_point_size = font.pointSizeF()
        for item in items:
            item.setFont(font)


class EvaluationView(QWidget):
    """Evaluates the model on hand (``set_model``) on the chosen data set's test split, which it asks the
    data set loader for; says what it wants done elsewhere through its signals."""

    evaluated = Signal(object)  # EvaluationResult
    cell_selected = Signal(int, int)
    send_to_canvas = Signal(object)  # a test image (uint8 28x28 array) to classify on the canvas
    message = Signal(str)  # for the status line
    error = Signal(str, str)  # title, message
    export_requested = Signal(object, str)  # write() -> files written, the path asked for

    def __init__(self, loader: Any, settings: AppSettings, dialogs: Dialogs) -> None:
        super().__init__()
        self.loader = loader
        self.settings = settings
        self.dialogs = dialogs  # where exports go is asked through it
        self.result: EvaluationResult | None = None
        self.split: Any = None
        self.class_names: tuple[str, ...] = tuple(str(i) for i in range(10))
        self.model_source = ""
        self.predictor: Any = None
        self.model_version = 0  # of the model on hand (gui.model_on_hand); -1: a model tried on the canvas
        self.result_version: int | None = None  # of the model the figures shown belong to
        self.job = Job(self)
        self.job.finished.connect(self._finish)

        layout = QVBoxLayout(self)
        layout.addLayout(self._build_top())
        layout.addWidget(self.summary)
        layout.addWidget(self._build_body(), 1)

    def _build_top(self) -> QHBoxLayout:
        """Evaluate, its progress, the exports; and the summary line."""
        self.evaluate_button = QPushButton("Evaluate", objectName="evaluateButton")
        self.evaluate_button.setToolTip("Evaluate the model on hand on the chosen data set's test split (Ctrl+E)")
        self.evaluate_button.clicked.connect(self.evaluate)
        self.progress = QProgressBar(objectName="evaluationProgress")
        self.progress.setVisible(False)
        self.summary = QLabel(
            "Evaluate the model answering on the canvas on the selected data set's test split.",
            objectName="evaluationSummary",
        )
        self.summary.setWordWrap(True)
        self.export_csv_button = QPushButton("Export CSV...", objectName="exportCsvButton")
        self.export_png_button = QPushButton("Export PNG...", objectName="exportPngButton")
        self.export_csv_button.clicked.connect(self.export_csv_dialog)
        self.export_png_button.clicked.connect(self.export_png_dialog)
        for button in (self.export_csv_button, self.export_png_button):
            button.setEnabled(False)
        top = QHBoxLayout()
        top.addWidget(self.evaluate_button)
        top.addWidget(self.progress, 1)
        top.addWidget(self.export_csv_button)
        top.addWidget(self.export_png_button)
        return top

    def _build_body(self) -> QSplitter:
        """The confusion matrix beside the per-class accuracy, above the gallery of a cell's images."""
        per_class = self._build_per_class_plot()  # first: the matrix's headers label its axis too
        upper = QSplitter(Qt.Orientation.Horizontal)
        upper.addWidget(self._build_matrix())
        upper.addWidget(per_class)
        upper.setSizes([420, 260])
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(upper)
        body.addWidget(self._build_gallery())
        body.setSizes([380, 260])
        return body

    def _build_per_class_plot(self) -> pg.PlotWidget:
        # Horizontal bars, one row per class in the matrix's order, so that class names of any length
        # (Fashion-MNIST's "Ankle boot") stay readable on the left axis.
        self.per_class_plot = pg.PlotWidget(objectName="perClassPlot")
        self.per_class_plot.setBackground("w")
        self.per_class_plot.setLabel("bottom", "accuracy (%)")
        self.per_class_plot.setMouseEnabled(x=False, y=False)
        self.per_class_plot.invertY(True)
        self.per_class_plot.setYRange(-0.5, 9.5, padding=0.02)
        self.per_class_plot.setXRange(0, 100, padding=0.02)  # not pyqtgraph's empty -0.4..0.4 (x0.001)
        self.per_class_bars = pg.BarGraphItem(x0=0, y=np.arange(10), width=np.zeros(10), height=0.7, brush="#4c7fd1")
        self.per_class_plot.addItem(self.per_class_bars)
        return self.per_class_plot

    def _build_matrix(self) -> QWidget:
        self.matrix = CountMatrix(10, 10, objectName="confusionMatrix")
        self.matrix.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.matrix.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.matrix.setToolTip("Rows: true class; columns: predicted class. Click a cell to see its images.")
        self.matrix.cellClicked.connect(self.select_cell)
        self.matrix.cellActivated.connect(self.select_cell)  # Enter on the current cell: keyboard users too
        self._set_headers()
        matrix_box = QWidget()
        matrix_layout = QVBoxLayout(matrix_box)
        matrix_layout.setContentsMargins(0, 0, 0, 0)
        matrix_title = QLabel("Confusion matrix (rows = true, columns = predicted)")
        matrix_title.setWordWrap(True)  # a narrow window: two lines, not a wider window
        matrix_layout.addWidget(matrix_title)
        matrix_layout.addWidget(self.matrix)
        return matrix_box

    def _build_gallery(self) -> QWidget:
        self.gallery_label = QLabel("Click a cell of the confusion matrix", objectName="galleryLabel")
        self.gallery_label.setWordWrap(True)
        self.all_mistakes_button = QPushButton("All mistakes", objectName="allMistakesButton")
        self.all_mistakes_button.setToolTip("Every misclassified test image, the most confident mistakes first")
        self.all_mistakes_button.setEnabled(False)
        self.all_mistakes_button.clicked.connect(self.show_all_mistakes)
        self.gallery = make_gallery("misclassifiedGallery")
        self.gallery.itemClicked.connect(self._send_to_canvas)
        self.gallery.itemActivated.connect(self._send_to_canvas)
        gallery_box = QWidget()
        gallery_layout = QVBoxLayout(gallery_box)
        gallery_layout.setContentsMargins(0, 0, 0, 0)
        gallery_top = QHBoxLayout()
        gallery_top.addWidget(self.gallery_label, 1)
        gallery_top.addWidget(self.all_mistakes_button)
        gallery_layout.addLayout(gallery_top)
        gallery_layout.addWidget(self.gallery)
        return gallery_box

    # -- running --------------------------------------------------------------------------------------------
    def set_model(self, predictor: Any, version: int) -> None:
        """The model Evaluate evaluates from now on; figures of another model are marked out of date."""
        self.predictor = predictor
        self.model_version = version
        if self.result is not None:
            self._show_summary()

    @property
    def stale(self) -> bool:
        """Whether the figures shown are of a model other than the one Evaluate would evaluate now."""
        return self.result is not None and self.result_version != self.model_version

    def evaluate(self) -> None:
        if self.job.running:
            return
        predictor = self.predictor
        if predictor is None:
            self.error.emit("Evaluate", "No model to evaluate: train one or open a checkpoint.")
            return
        self.evaluate_button.setEnabled(False)
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        model = copy.deepcopy(predictor.model)
        source, version = predictor.source, self.model_version
        self.loader.ensure(
            lambda dataset: self._start(model, predictor, source, version, dataset), on_fail=self._finish
        )

    def _start(self, model: Any, predictor: Any, source: str, version: int, dataset: Any) -> None:
        try:
            check_classes(dataset, predictor.class_names, f"The model in use ({source})")
        except UserError as exc:
            self.error.emit("Evaluate", str(exc))
            self._finish()
            return
        self._pending = (dataset.test, predictor.class_names, source, version)
        self._dataset_name = dataset.name
        self.job.start(
            EvaluationWorker(model, dataset.test, predictor.normalization, len(predictor.class_names)),
            progress=self._on_progress,
            result=self._on_result,
            failed=self._on_failed,
        )

    @Slot(object)
    def _on_result(self, result: EvaluationResult) -> None:
        split, class_names, source, version = self._pending
        self.result_version = version
        self.show_result(result, split, class_names, source)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.error.emit("Evaluation failed", message)

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    @Slot()
    def _finish(self) -> None:
        if self.job.running:  # the data set was there: the worker has started and will finish later
            return
        self.progress.setVisible(False)
        self.evaluate_button.setEnabled(True)

    def shutdown(self) -> None:
        self.job.cancel()
        self.job.wait()

    # -- showing --------------------------------------------------------------------------------------------
    def _set_headers(self) -> None:
        names = list(self.class_names)
        self.matrix.setHorizontalHeaderLabels([abbreviate(name) for name in names])  # full names: tooltips
        self.matrix.setVerticalHeaderLabels(names)
        for column, name in enumerate(names):
            self.matrix.horizontalHeaderItem(column).setToolTip(f"predicted {name}")
        self.per_class_plot.getAxis("left").setTicks([[(i, name) for i, name in enumerate(names)]])

    @Slot(object)
    def show_result(
        self,
        result: EvaluationResult,
        split: Any = None,
        class_names: tuple[str, ...] | None = None,
        source: str | None = None,
    ) -> None:
        if split is not None:
            self.split = split
        if class_names is not None:
            self.class_names = class_names
        if source is not None:
            self.model_source = source
        self.result = result
        self._set_headers()
        matrix = result.confusion_matrix
        off_diagonal = matrix - np.diag(np.diag(matrix))
        worst = max(int(off_diagonal.max()), 1)
        for row in range(matrix.shape[0]):
            for col in range(matrix.shape[1]):
                count = int(matrix[row, col])
                item = QTableWidgetItem(str(count))
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if row == col:
                    shade = 0.25 + 0.75 * (count / max(int(matrix[row].sum()), 1))
                    item.setBackground(QBrush(QColor.fromRgbF(1 - 0.6 * shade, 1 - 0.25 * shade, 1 - 0.6 * shade)))
                elif count:
                    heat = count / worst
                    item.setBackground(QBrush(QColor.fromRgbF(1.0, 1 - 0.75 * heat, 1 - 0.8 * heat)))
                item.setToolTip(f"true {self.class_names[row]}, predicted {self.class_names[col]}: {count}")
                self.matrix.setItem(row, col, item)
        self.matrix.fit_counts()
        per_class = np.nan_to_num(result.per_class_accuracy) * 100
        self.per_class_bars.setOpts(x0=0, width=per_class)
        low = max(0.0, float(per_class.min()) - 5) if len(per_class) else 0
        self.per_class_plot.setXRange(low, 100, padding=0.02)
        self._show_summary()
        self.all_mistakes_button.setEnabled(True)
        worst_cells = result.most_confused(1)
        if worst_cells:
            self.select_cell(*worst_cells[0][:2])
        else:
            self.gallery.clear()
        self.evaluated.emit(result)

    def _show_summary(self) -> None:
        """Which model the figures are of; out of date (and not exported) once the model has changed."""
        result = self.result
        text = (
            f"<b>Accuracy {result.accuracy:.2%}</b> on {result.count:,} test images "
            f"({result.mistakes} mistakes, loss {result.loss:.4f}). Model: {html.escape(self.model_source)}."
        )
        if self.stale:
            text = (
                f"<span style='color:#a05000'><b>Out of date:</b> the model has changed since; evaluate "
                f"again.</span><br>{text}"
            )
        self.summary.setText(text)
        for button in (self.export_csv_button, self.export_png_button):
            button.setEnabled(not self.stale)

    def select_cell(self, true_label: int, predicted: int) -> None:
        """Fill the gallery with the test images of class ``true_label`` predicted as ``predicted``."""
        if self.result is None or self.split is None:
            return
        self.matrix.setCurrentCell(true_label, predicted)
        indices = self.result.pair_indices(true_label, predicted)
        shown = self._fill_gallery(indices, with_classes=False)
        self.gallery_label.setText(
            f"True {self.class_names[true_label]}, predicted {self.class_names[predicted]}: "
            f"{len(indices)} images{shown}. Click one to inspect it on the canvas."
        )
        self.cell_selected.emit(true_label, predicted)

    def show_all_mistakes(self) -> None:
        """Every misclassified test image in the gallery, the most confident mistakes first: what a
        cell shows for one pair of classes, for all of them."""
        if self.result is None or self.split is None:
            return
        self.matrix.clearSelection()
        indices = self.result.misclassified
        shown = self._fill_gallery(indices, with_classes=True)
        self.gallery_label.setText(
            f"All {len(indices)} mistakes, the most confident first{shown}. Click one to inspect it on the canvas."
        )

    def _fill_gallery(self, indices: np.ndarray, with_classes: bool) -> str:
        """Thumbnails of the test images ``indices`` with the model's probability for its answer (and
        the true and predicted classes, ``with_classes``); returns the note for a list cut short."""
        self.gallery.clear()
        # a third line of text under each thumbnail for the classes ("An.→Sn."): Qt wraps, and then
        # elides, a caption wider than the thumbnail, whatever the grid's width
        self.gallery.setGridSize(QSize(THUMB + 30, THUMB + (56 if with_classes else 40)))
        result, names = self.result, self.class_names
        for index in (int(i) for i in indices[:GALLERY_LIMIT]):
            true_label, predicted = int(result.labels[index]), int(result.predictions[index])
            probability = float(result.probabilities[index, predicted])
            classes = f"{abbreviate(names[true_label], 3)}→{abbreviate(names[predicted], 3)}\n" if with_classes else ""
            item = QListWidgetItem(
                digit_icon(self.split.images[index].numpy()), f"#{index}\n{classes}{probability:.0%}"
            )
            item.setData(Qt.ItemDataRole.UserRole, index)
            item.setToolTip(
                f"test image {index}: true {names[true_label]}, predicted {names[predicted]} "
                f"with probability {probability:.1%}"
            )
            self.gallery.addItem(item)
        return "" if len(indices) <= GALLERY_LIMIT else f" (first {GALLERY_LIMIT})"

    def gallery_indices(self) -> list[int]:
        return [self.gallery.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.gallery.count())]

    def _send_to_canvas(self, item: QListWidgetItem) -> None:
        index = item.data(Qt.ItemDataRole.UserRole)
        self.send_to_canvas.emit(self.split.images[index].numpy())
        self.message.emit(f"Test image {index} sent to the canvas")

    # -- export ---------------------------------------------------------------------------------------------
    def export_csv(self, path: str | Path) -> Path:
        return write_csv(
            self.result, self.class_names, path, model=self.model_source, dataset=getattr(self, "_dataset_name", "")
        )

    def export_png(self, path: str | Path) -> list[Path]:
        """One report image, the file asked for, rendered from the result (gui.figures): a title naming the
        model, the data set and the accuracy, the confusion matrix drawn from its counts, and the per-class
        accuracy plot. Written atomically; OSError when it cannot be written."""
        result = self.result
        matrix = figures.matrix_image(result.confusion_matrix, list(self.class_names))
        plot = figures.plot_image(self.per_class_plot.plotItem, width=420)
        report = figures.page(
            f"Evaluation: {result.accuracy:.2%} accuracy on {result.count:,} test images",
            f"Model: {self.model_source}    Data set: {getattr(self, '_dataset_name', '')}    "
            f"Mistakes: {result.mistakes:,}",
            [
                ("Confusion matrix (rows: true class, columns: predicted class)", matrix),
                ("Accuracy per class (%)", plot),
            ],
            side_by_side=True,
        )
        return [save_png(report, Path(path))]

    def export_csv_dialog(self) -> None:
        path, _ = ask_export_path(self.dialogs, self.settings, "Export evaluation", "evaluation.csv", "CSV (*.csv)")
        if path:
            self.export_requested.emit(lambda: [self.export_csv(path)], path)

    def export_png_dialog(self) -> None:
        path, _ = ask_export_path(self.dialogs, self.settings, "Export plots", "evaluation.png", "PNG (*.png)")
        if path:
            self.export_requested.emit(lambda: self.export_png(path), path)
