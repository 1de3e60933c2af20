"""The recognition side: canvas, live prediction, probability bars, what the model sees, saliency.

Prediction runs on the GUI thread because it is short (a few milliseconds: preprocessing plus one
forward pass of a small CNN on a private CPU copy of the weights). While a stroke is being drawn it is
throttled: the next prediction waits at least twice as long as the last one took, and never less than
``MIN_INTERVAL_MS``, so drawing stays fluid however slow the model.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QElapsedTimer, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QImage, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from engine.errors import UserError
from engine.images import load_image
from engine.inference import Prediction, Predictor
from engine.preprocess import PreparedInput
from gui.draw_canvas import DEFAULT_PEN, DrawCanvas, array_to_qimage

MIN_INTERVAL_MS = 40
INPUT_VIEW_SIZE = 140  # 5 screen pixels per model pixel


def confidence_text(prediction: Prediction, names: tuple[str, ...]) -> str:
    """"97.3% confident"; "not sure: 4 or 9?" under UNSURE_BELOW; "not sure: unlike any digit (...)"."""
    doubt = prediction.doubt
    if doubt is None:
        return f"{prediction.confidence:.1%} confident"
    if doubt.startswith("unlike any digit"):
        return f"not sure: {doubt.replace(': ', ' (', 1)})"
    order = np.argsort(prediction.probabilities)[::-1]
    return f"not sure: {names[order[0]]} or {names[order[1]]}?"


class ProbabilityBars(pg.PlotWidget):
    """Ten bars, the top class highlighted."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("probabilityBars")
        self.setBackground("w")
        self.setMouseEnabled(x=False, y=False)
        self.setMenuEnabled(False)
        self.hideButtons()
        self.setYRange(0, 1, padding=0.02)
        self.setXRange(-0.6, 9.6, padding=0)
        self.setLabel("left", "probability")
        self.getAxis("bottom").setTicks([[(i, str(i)) for i in range(10)]])
        self.values = np.zeros(10, dtype=np.float32)
        self.bars = pg.BarGraphItem(x=np.arange(10), height=self.values, width=0.7, brushes=["#8fb3e8"] * 10)
        self.addItem(self.bars)

    def sizeHint(self) -> QSize:  # pyqtgraph's 640x480 would make the panel taller than a screen
        return QSize(320, 170)

    def set_labels(self, names: tuple[str, ...]) -> None:
        self.getAxis("bottom").setTicks([[(i, n if len(n) <= 3 else n[:3]) for i, n in enumerate(names)]])

    def set_probabilities(self, probabilities: np.ndarray) -> None:
        self.values = np.asarray(probabilities, dtype=np.float32)
        brushes = ["#8fb3e8"] * len(self.values)
        if self.values.sum() > 0:
            brushes[int(self.values.argmax())] = "#1f4fa8"
        self.bars.setOpts(x=np.arange(len(self.values)), height=self.values, brushes=brushes)


class RecognitionPanel(QWidget):
    """``prediction_made`` carries each Prediction (tests and the status bar listen)."""

    prediction_made = Signal(object)
    open_image_requested = Signal()
    message = Signal(str)
    labelled = Signal(int)  # the user says what the digit on the canvas really is (a class index)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.predictor: Predictor | None = None
        self.last_prediction: Prediction | None = None
        self.last_latency_ms = 0.0

        self.canvas = DrawCanvas()
        self.pen_slider = QSlider(Qt.Orientation.Horizontal, objectName="penWidthSlider")
        self.pen_slider.setRange(1, 20)  # percent of the canvas side / 0.5
        self.pen_slider.setValue(round(DEFAULT_PEN * 200))
        self.pen_slider.setToolTip("Pen width")
        self.pen_slider.setMinimumWidth(60)
        self.pen_slider.valueChanged.connect(lambda v: self.canvas.set_pen_fraction(v / 200))
        self.clear_button = QPushButton("Clear", objectName="clearButton")
        self.clear_button.setToolTip("Clear the canvas (Delete); Undo brings it back")
        self.undo_button = QPushButton("Undo", objectName="undoButton")
        self.undo_button.setToolTip("Undo the last stroke (Ctrl+Z)")
        self.open_image_button = QPushButton("Open image...", objectName="openImageButton")
        self.clear_button.clicked.connect(self.canvas.clear)
        self.undo_button.clicked.connect(self.canvas.undo)
        self.open_image_button.clicked.connect(self.open_image_requested)
        clear = QShortcut(QKeySequence.StandardKey.Delete, self)  # not Esc: it closes menus, and must not wipe
        clear.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        clear.activated.connect(self.canvas.clear)
        undo = QShortcut(QKeySequence.StandardKey.Undo, self)
        undo.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        undo.activated.connect(self.canvas.undo)

        self.prediction_label = QLabel("–", objectName="predictionLabel")
        self.prediction_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        font = self.prediction_label.font()
        font.setPointSize(54)
        font.setBold(True)
        self.prediction_label.setFont(font)
        self.prediction_label.setMinimumWidth(120)
        self.confidence_label = QLabel("Draw a digit", objectName="confidenceLabel")
        self.confidence_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.model_input_view = QLabel(objectName="modelInputView")
        self.model_input_view.setFixedSize(INPUT_VIEW_SIZE, INPUT_VIEW_SIZE)
        self.model_input_view.setToolTip("What the model sees: the 28x28 input after preprocessing")
        # a selector, so that the tooltip does not take the black background too (it was an empty black box)
        self.model_input_view.setStyleSheet("QLabel#modelInputView { background: black; border: 1px solid #888; }")
        self.model_input_caption = QLabel("What the model sees", objectName="modelInputCaption")
        self.model_input_caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.canvas_notice = QLabel("", objectName="canvasNotice")  # a problem with what was opened, said here
        self.canvas_notice.setWordWrap(True)
        self.canvas_notice.setStyleSheet("QLabel#canvasNotice { color: #b00020; }")
        self.canvas_notice.setVisible(False)
        # "That's a ...": the user's own label for what is on the canvas, kept as a personal sample
        self.label_buttons = []
        for index in range(10):
            button = QPushButton(str(index), objectName=f"labelButton{index}")
            button.setToolTip(f"That's a {index}: keep this drawing as a sample of {index} (key {index})")
            button.setFixedWidth(24)
            button.clicked.connect(lambda _=False, i=index: self.label_as(i))
            self.label_buttons.append(button)
        self.canvas.digit_key.connect(self.label_as)
        self.saliency_check = QCheckBox("Saliency overlay", objectName="saliencyCheck")
        self.saliency_check.setToolTip("Highlight the pixels that drove the prediction (gradient x input)")
        self.saliency_check.toggled.connect(lambda _: self._show_input(self.last_prediction))
        self.bars = ProbabilityBars()
        self.bars.setMinimumHeight(120)
        self.source_label = QLabel("", objectName="modelSourceLabel")
        self.source_label.setWordWrap(True)
        self.latency_label = QLabel("", objectName="latencyLabel")

        tools = QGridLayout()  # two rows, so that the panel fits beside the others on a 1024-pixel screen
        tools.addWidget(QLabel("Pen"), 0, 0)
        tools.addWidget(self.pen_slider, 0, 1, 1, 2)
        tools.addWidget(self.undo_button, 1, 0, 1, 1)
        tools.addWidget(self.clear_button, 1, 1)
        tools.addWidget(self.open_image_button, 1, 2)
        answer = QGridLayout()
        answer.addWidget(self.prediction_label, 0, 0)
        answer.addWidget(self.confidence_label, 1, 0)
        answer.addWidget(self.saliency_check, 2, 0, Qt.AlignmentFlag.AlignCenter)
        answer.addWidget(self.model_input_caption, 0, 1)
        answer.addWidget(self.model_input_view, 1, 1, 2, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.canvas_notice)
        layout.addLayout(tools)
        teach_row = QHBoxLayout()
        teach_row.setSpacing(1)
        teach_row.addWidget(QLabel("That's a"))
        for button in self.label_buttons:
            teach_row.addWidget(button)
        teach_row.addStretch(1)
        layout.addLayout(teach_row)
        layout.addLayout(answer)
        layout.addWidget(self.bars)
        layout.addWidget(self.source_label)
        layout.addWidget(self.latency_label)

        self._throttle = QTimer(self)
        self._throttle.setSingleShot(True)
        self._throttle.timeout.connect(self.predict_now)
        self._since_last = QElapsedTimer()
        self._since_last.start()
        self.canvas.stroke_changed.connect(self._schedule)
        for changed in (self.canvas.stroke_finished, self.canvas.cleared, self.canvas.image_restored):
            changed.connect(self.predict_now)
        for changed in (self.canvas.stroke_changed, self.canvas.stroke_finished, self.canvas.cleared,
                        self.canvas.image_restored):
            changed.connect(self._update_edit_buttons)
        self.canvas.image_dropped.connect(self.open_image)
        self._show_input(None)
        self._update_edit_buttons()

    # -- model ----------------------------------------------------------------------------------------------
    def set_predictor(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.bars.set_labels(predictor.class_names)
        self.source_label.setText(f"Model: {predictor.source}")
        self.predict_now()

    # -- prediction -----------------------------------------------------------------------------------------
    def _schedule(self) -> None:
        if self._throttle.isActive():
            return
        interval = max(MIN_INTERVAL_MS, 2 * self.last_latency_ms)
        wait = max(0, int(interval - self._since_last.elapsed()))
        self._throttle.start(wait)

    def _update_edit_buttons(self) -> None:
        """Undo and Clear only when there is something to undo or clear."""
        self.undo_button.setEnabled(self.canvas.can_undo())
        self.clear_button.setEnabled(not self.canvas.is_empty())
        self.canvas_notice.setVisible(False)

    def predict_now(self) -> Prediction | None:
        self._throttle.stop()
        if self.predictor is None:
            return None
        start = time.perf_counter()
        source = self.canvas.source if self.canvas.background is not None and not self.canvas.strokes else None
        if source is None:
            prediction = self.predictor.predict(self.canvas.to_array())
        elif source[0] == "file":  # as `predict` reads the same file: the image itself, not the canvas's copy
            prediction = self.predictor.predict(source[1])
        else:  # a data set's own 28x28 image, as the evaluation read it
            prediction = self.predictor.predict_prepared(PreparedInput(source[1].astype(np.float32) / 255.0, False))
        self.last_latency_ms = 1000 * (time.perf_counter() - start)
        self._since_last.restart()
        self.show_prediction(prediction)
        return prediction

    def label_as(self, index: int) -> None:
        """"That's a <index>": only for something drawn or shown, and only digits the model knows."""
        if self.canvas.is_empty() or self.predictor is None or index >= len(self.predictor.class_names):
            return
        self.labelled.emit(index)

    def show_prediction(self, prediction: Prediction) -> None:
        self.last_prediction = prediction
        if prediction.label is None:
            self.prediction_label.setText("–")
            self.confidence_label.setText("Draw a digit" if self.canvas.is_empty() else "Nothing recognisable")
        else:
            names = self.predictor.class_names if self.predictor else tuple(map(str, range(10)))
            name = names[prediction.label]
            self.prediction_label.setText(name if len(name) <= 2 else name[:10])
            self.confidence_label.setText(confidence_text(prediction, names))
        self.bars.set_probabilities(prediction.probabilities)
        answered = not self.canvas.is_empty()  # an empty canvas asks nothing: no time to report
        self.latency_label.setText(f"Answered in {self.last_latency_ms:.1f} ms" if answered else "")
        self._show_input(prediction)
        self.prediction_made.emit(prediction)

    def _show_input(self, prediction: Prediction | None) -> None:
        if prediction is None or prediction.prepared.empty:
            pixels = np.zeros((28, 28), np.float32)
        else:
            pixels = prediction.prepared.pixels
        gray = (np.clip(pixels, 0, 1) * 255).astype(np.uint8)
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
        if (self.saliency_check.isChecked() and prediction is not None and self.predictor is not None
                and not prediction.prepared.empty):
            heat = self.predictor.saliency(prediction.prepared)[:, :, None]
            red = np.array([255.0, 40.0, 0.0], dtype=np.float32)
            rgb = (rgb.astype(np.float32) * (1 - heat) + red * heat).clip(0, 255).astype(np.uint8)
        rgb = np.ascontiguousarray(rgb)
        image = QImage(rgb.data, 28, 28, 28 * 3, QImage.Format.Format_RGB888).copy()
        pixmap = QPixmap.fromImage(image).scaled(INPUT_VIEW_SIZE, INPUT_VIEW_SIZE,
                                                 Qt.AspectRatioMode.IgnoreAspectRatio,
                                                 Qt.TransformationMode.FastTransformation)
        self.model_input_view.setPixmap(pixmap)

    # -- images ---------------------------------------------------------------------------------------------
    def open_image(self, path: str) -> bool:
        """Classify an image file as ``predict`` does (the same probabilities), shown on the canvas with its
        aspect ratio; a file that cannot be read is said under the canvas, where the user looked."""
        try:
            gray = load_image(path)
        except UserError as exc:
            self.canvas_notice.setText(str(exc))
            self.canvas_notice.setVisible(True)
            self.message.emit(str(exc))
            return False
        self._show(array_to_qimage((np.clip(gray, 0, 1) * 255).astype(np.uint8)), ("file", gray))
        self.message.emit(f"Classified {Path(path).name}")
        return True

    @Slot(object)
    def show_array(self, array: np.ndarray) -> None:
        """Show a data set's 28x28 image (uint8, ink bright) and classify it as the data set's own image, as the
        Evaluate tab did (no preprocessing: it is in MNIST's form already)."""
        self._show(array_to_qimage(255 - np.asarray(array, dtype=np.uint8)), ("sample", np.asarray(array)))

    def _show(self, image: QImage, source: tuple[str, np.ndarray]) -> None:
        self.canvas.set_image(image, source)  # ("file" | "sample", its own pixels)
        self._update_edit_buttons()
        self.predict_now()
