"""The recognition side: canvas, live reading of a digit or a number, probability bars, what the model
sees, saliency.

The square canvas holds one digit, read as before; the wide canvas (*Wide*) and opened images are read
by :func:`engine.reading.read_number`: several digits are answered as a number, each digit a button that
shows its own probabilities, input and saliency, with boxes around the digits on the canvas. "That's a"
labels the digit selected.

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
from PySide6.QtCore import QElapsedTimer, QRect, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QFontMetrics, QImage, QKeySequence, QPixmap, QResizeEvent, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from engine.errors import UserError
from engine.images import load_image
from engine.inference import Prediction, Predictor
from engine.preprocess import FIELD, PreparedInput
from engine.reading import DigitRead, Reading, read_number
from gui.draw_canvas import DEFAULT_PEN, RENDER_SIZE, WIDE, DrawCanvas, array_to_qimage

MIN_INTERVAL_MS = 40
INPUT_VIEW_SIZE = 140  # 5 screen pixels per model pixel
# The canvas's own keys, while it (or the panel) has the focus; the keyboard help lists them too.
# Delete, not Esc, clears: Esc closes menus, and must not wipe a drawing.
CANVAS_KEYS = (
    (QKeySequence.StandardKey.Undo, "Undo on the canvas (a stroke, a Clear, an image)"),
    (QKeySequence.StandardKey.Delete, "Clear the canvas"),
)


def confidence_text(prediction: Prediction, names: tuple[str, ...]) -> str:
    """ "97.3% confident"; "not sure: 4 or 9?" under UNSURE_BELOW; "not sure: unlike any digit (...)"."""
    doubt = prediction.doubt
    if doubt is None:
        return f"{prediction.confidence:.1%} confident"
    if doubt.startswith("unlike any digit"):
        return f"not sure: {doubt.replace(': ', ' (', 1)})"
    order = np.argsort(prediction.probabilities)[::-1]
    return f"not sure: {names[order[0]]} or {names[order[1]]}?"


def steady_label(text: str, name: str, lines: int) -> QLabel:
    """A label whose text never changes the layout: ``lines`` lines high, wrapped, as wide as the layout
    makes it (a longer text is cut, and whole in the tooltip: :func:`say`)."""
    label = QLabel(text, objectName=name)
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    label.setFixedHeight(lines * label.fontMetrics().lineSpacing() + 2)
    label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    return label


def say(label: QLabel, text: str) -> None:
    """Set a steady label's text, cut with "…" where it needs more lines than the label has, and its
    tooltip to the whole of it."""
    label.setToolTip(text)
    metrics, width, height = label.fontMetrics(), label.width(), label.height()

    def fits(candidate: str) -> bool:
        bounds = metrics.boundingRect(QRect(0, 0, width, 10 * height), Qt.TextFlag.TextWordWrap, candidate)
        return bounds.height() <= height

    if width > 0 and not fits(text):
        low, high = 0, len(text)  # the longest start of the text that fits with the ellipsis
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if fits(text[:middle] + "…") else (low, middle - 1)
        text = text[:low].rstrip() + "…"
    label.setText(text)


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


def _empty_prediction(classes: int) -> Prediction:
    return Prediction(None, np.zeros(classes, np.float32), PreparedInput(np.zeros((FIELD, FIELD), np.float32), True))


class RecognitionPanel(QWidget):
    """``prediction_made`` carries the Prediction shown (the digit selected, for a number); ``reading_made``
    each Reading (tests and the status bar listen)."""

    prediction_made = Signal(object)
    reading_made = Signal(object)
    wide_changed = Signal(bool)  # the canvas turned wide (for numbers) or square
    open_image_requested = Signal()
    message = Signal(str)
    labelled = Signal(int)  # the user says what the digit on the canvas really is (a class index)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.predictor: Predictor | None = None
        self.last_prediction: Prediction | None = None
        self.last_reading: Reading = Reading(())
        self.read_image: np.ndarray | None = None  # what the last reading read (boxes are in its pixels)
        self.selected = 0  # the digit of the reading whose details are shown
        self.last_latency_ms = 0.0

        self.canvas = DrawCanvas()
        tools = self._build_tools()
        answer = self._build_answer()
        teach_row = self._build_teaching_row()
        layout = QVBoxLayout(self)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.canvas_notice)
        layout.addWidget(self.digits_area)
        layout.addLayout(tools)
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
        for changed in (
            self.canvas.stroke_changed,
            self.canvas.stroke_finished,
            self.canvas.cleared,
            self.canvas.image_restored,
        ):
            changed.connect(self._update_edit_buttons)
        self.canvas.image_dropped.connect(self.open_image)
        self._show_input(None)
        self._update_edit_buttons()

    def _build_tools(self) -> QGridLayout:
        """The pen, Wide, Boxes, Undo, Clear and Open image..., and the canvas's own keys."""
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
        self.wide_check = QCheckBox("Wide", objectName="wideCheck")
        self.wide_check.setToolTip("A wide canvas for a number of several digits (the square one reads one digit)")
        self.wide_check.toggled.connect(self.set_wide)
        self.boxes_check = QCheckBox("Boxes", objectName="boxesCheck")
        self.boxes_check.setToolTip("Outline each digit read on the canvas")
        self.boxes_check.setChecked(True)
        self.boxes_check.toggled.connect(self.canvas.set_show_boxes)
        for key, slot in zip((key for key, _ in CANVAS_KEYS), (self.canvas.undo, self.canvas.clear), strict=True):
            shortcut = QShortcut(key, self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)
        tools = QGridLayout()  # two rows, so that the panel fits beside the others on a 1024-pixel screen
        tools.addWidget(QLabel("Pen"), 0, 0)
        pen_row = QHBoxLayout()
        pen_row.addWidget(self.pen_slider, 1)
        pen_row.addWidget(self.wide_check)
        pen_row.addWidget(self.boxes_check)
        tools.addLayout(pen_row, 0, 1, 1, 2)
        tools.addWidget(self.undo_button, 1, 0, 1, 1)
        tools.addWidget(self.clear_button, 1, 1)
        tools.addWidget(self.open_image_button, 1, 2)
        return tools

    def _build_answer(self) -> QGridLayout:
        """The digit or number read, its confidence, what the model sees, the bars and their source."""
        self.prediction_label = QLabel("–", objectName="predictionLabel")
        self.prediction_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        font = self.prediction_label.font()
        font.setPointSize(54)
        font.setBold(True)
        self.prediction_label.setFont(font)
        self.prediction_label.setMinimumWidth(120)
        self.prediction_label.setFixedHeight(QFontMetrics(font).height())
        # a long number is set smaller (_fit_answer), never widening the panel under the pen
        self.prediction_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.confidence_label = steady_label("Draw a digit", "confidenceLabel", lines=2)
        self.confidence_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.model_input_view = QLabel(objectName="modelInputView")
        self.model_input_view.setFixedSize(INPUT_VIEW_SIZE, INPUT_VIEW_SIZE)
        self.model_input_view.setToolTip("What the model sees: the 28x28 input after preprocessing")
        # a selector, so that the tooltip does not take the black background too (it was an empty black box)
        self.model_input_view.setStyleSheet("QLabel#modelInputView { background: black; border: 1px solid #888; }")
        self.model_input_caption = QLabel("What the model sees", objectName="modelInputCaption")
        self.model_input_caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # a problem with what was opened, said where the user looked; its room is kept when there is none
        self.canvas_notice = steady_label("", "canvasNotice", lines=2)
        self.canvas_notice.setStyleSheet("QLabel#canvasNotice { color: #b00020; }")
        self.saliency_check = QCheckBox("Saliency overlay", objectName="saliencyCheck")
        self.saliency_check.setToolTip("Highlight the pixels that drove the prediction (gradient x input)")
        self.saliency_check.toggled.connect(lambda _: self._show_input(self.last_prediction))
        self.bars = ProbabilityBars()
        self.bars.setMinimumHeight(120)
        self.source_label = steady_label("", "modelSourceLabel", lines=2)
        self.latency_label = steady_label("", "latencyLabel", lines=1)
        answer = QGridLayout()
        answer.addWidget(self.prediction_label, 0, 0)
        answer.addWidget(self.confidence_label, 1, 0)
        answer.addWidget(self.saliency_check, 2, 0, Qt.AlignmentFlag.AlignCenter)
        answer.addWidget(self.model_input_caption, 0, 1)
        answer.addWidget(self.model_input_view, 1, 1, 2, 1)
        return answer

    def _build_teaching_row(self) -> QHBoxLayout:
        """ "That's a" and a button per digit; and the row of a number's digits, one button each."""
        # "That's a ...": the user's own label for what is on the canvas, kept as a personal sample
        self.label_buttons = []
        for index in range(10):
            button = QPushButton(str(index), objectName=f"labelButton{index}")
            button.setToolTip(f"That's a {index}: keep this drawing as a sample of {index} (key {index})")
            button.setFixedWidth(24)
            button.clicked.connect(lambda _=False, i=index: self.label_as(i))
            self.label_buttons.append(button)
        self.canvas.digit_key.connect(self.label_as)
        # the digits of a number, one button each: the one checked shows its details
        self.digit_buttons: list[QPushButton] = []
        self.digits_row = QHBoxLayout()
        self.digits_row.setSpacing(2)
        self.digits_row.setContentsMargins(0, 0, 0, 0)
        self.digits_box = QWidget(objectName="digitsBox")
        self.digits_box.setLayout(self.digits_row)
        # always there, as high as a row of buttons and its scroll bar: a long number scrolls, never moves
        # the canvas or widens the panel
        self.digits_area = QScrollArea(objectName="digitsArea")
        self.digits_area.setWidget(self.digits_box)
        self.digits_area.setWidgetResizable(True)
        self.digits_area.setFrameShape(QFrame.Shape.NoFrame)
        self.digits_area.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.digits_area.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.digits_area.setFixedHeight(
            QPushButton("0").sizeHint().height() + self.digits_area.horizontalScrollBar().sizeHint().height() + 2
        )
        teach_row = QHBoxLayout()
        teach_row.setSpacing(1)
        teach_row.addWidget(QLabel("That's a"))
        for button in self.label_buttons:
            teach_row.addWidget(button)
        teach_row.addStretch(1)
        return teach_row

    # -- model ----------------------------------------------------------------------------------------------
    def set_predictor(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.bars.set_labels(predictor.class_names)
        say(self.source_label, f"Model: {predictor.source}")
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
        say(self.canvas_notice, "")

    def predict_now(self) -> Prediction | None:
        self._throttle.stop()
        if self.predictor is None:
            return None
        start = time.perf_counter()
        source = self.canvas.source if self.canvas.background is not None and not self.canvas.strokes else None
        if source is None and not self.wide_check.isChecked():  # the square canvas holds one digit
            image = self.canvas.to_array()
            reading = Reading((DigitRead(self.predictor.predict(image), (0, 0, 0, 0)),))
        elif source is None:  # the wide canvas: its strokes say which ink is one digit
            image = self.canvas.to_array()
            reading = read_number(self.predictor, image, strokes=self.canvas.stroke_points())
        elif source[0] == "file":  # a file as `predict` reads it: the image, not the canvas's
            image = source[1]
            reading = read_number(self.predictor, image)
        else:  # a data set's own 28x28 image, as the evaluation read it
            image = source[1]
            prediction = self.predictor.predict_prepared(PreparedInput(source[1].astype(np.float32) / 255.0, False))
            reading = Reading((DigitRead(prediction, (0, 0, FIELD, FIELD)),))
        self.last_latency_ms = 1000 * (time.perf_counter() - start)
        self._since_last.restart()
        self.show_reading(reading, image)
        return self.last_prediction

    def set_wide(self, wide: bool) -> None:
        """A canvas three times as wide as tall, for numbers; the drawing stays."""
        self.canvas.set_aspect(WIDE if wide else 1.0)
        if self.wide_check.isChecked() != wide:
            self.wide_check.setChecked(wide)
        self.wide_changed.emit(wide)
        self.predict_now()

    def label_as(self, index: int) -> None:
        """ "That's a <index>": only for something drawn or shown, and only digits the model knows; for a
        number, about the digit selected."""
        if self.canvas.is_empty() or self.predictor is None or index >= len(self.predictor.class_names):
            return
        self.labelled.emit(index)

    def sample(self) -> tuple[np.ndarray, np.ndarray] | None:
        """What "That's a" keeps: the drawing (dark ink on white, uint8) and its 28x28 form; for a digit of a
        number, that digit's own ink alone."""
        prediction = self.last_prediction
        if prediction is None or prediction.prepared.empty:
            return None
        prepared = np.round(prediction.prepared.pixels * 255).astype(np.uint8)
        digits = self.last_reading.digits
        if len(digits) > 1 and digits[self.selected].ink is not None:
            ink = np.pad(digits[self.selected].ink, 8)
            return np.round((1.0 - np.clip(ink, 0, 1)) * 255).astype(np.uint8), prepared
        return self.canvas.to_array(), prepared

    def show_reading(self, reading: Reading, image: np.ndarray | None = None) -> None:
        """Show a reading: one digit as a digit, several as a number with a button per digit."""
        self.last_reading, self.read_image = reading, image
        self.selected = 0
        while self.digits_row.count():
            item = self.digits_row.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.digit_buttons = []
        several = len(reading.digits) > 1
        if several:
            self.digits_row.addWidget(QLabel("Digits:"))
            for k, digit in enumerate(reading.digits):
                label = digit.prediction.label
                name = "–" if label is None else self._names()[label]
                button = QPushButton(f"{name}  {digit.prediction.confidence:.0%}", objectName=f"digitButton{k}")
                button.setCheckable(True)
                button.setToolTip("Show this digit's probabilities, input and saliency; That's a labels it")
                button.clicked.connect(lambda _=False, i=k: self.select_digit(i))
                self.digit_buttons.append(button)
                self.digits_row.addWidget(button)
            self.digits_row.addStretch(1)
        self.digits_box.setVisible(True)
        size = (image.shape[1], image.shape[0]) if image is not None else (RENDER_SIZE, RENDER_SIZE)
        self.canvas.set_boxes([d.box for d in reading.digits], size)
        self.reading_made.emit(reading)
        self.select_digit(0)

    def select_digit(self, index: int) -> None:
        digits = self.last_reading.digits
        self.selected = index if 0 <= index < len(digits) else 0
        for k, button in enumerate(self.digit_buttons):
            button.setChecked(k == self.selected)
        if len(digits) > 1:
            self.canvas.set_boxes([d.box for d in digits], self.canvas.boxes_of, self.selected)
        self.show_prediction(digits[self.selected].prediction if digits else _empty_prediction(len(self._names())))

    def _names(self) -> tuple[str, ...]:
        return self.predictor.class_names if self.predictor else tuple(map(str, range(10)))

    def show_prediction(self, prediction: Prediction) -> None:
        self.last_prediction = prediction
        digits = self.last_reading.digits
        if prediction.label is None:
            say(self.prediction_label, "–")
            say(
                self.confidence_label,
                "Draw a digit" if self.canvas.is_empty() else self.last_reading.doubt or "Nothing recognisable",
            )
        elif len(digits) > 1:
            names = self._names()
            say(self.prediction_label, self.last_reading.label_text(names))
            say(
                self.confidence_label,
                f"digit {self.selected + 1} of {len(digits)}: " + confidence_text(prediction, names),
            )
        else:
            names = self._names()
            name = names[prediction.label]
            say(self.prediction_label, name if len(name) <= 2 else name[:10])
            say(self.confidence_label, confidence_text(prediction, names))
        self._fit_answer()
        self.bars.set_probabilities(prediction.probabilities)
        answered = not self.canvas.is_empty()  # an empty canvas asks nothing: no time to report
        self.latency_label.setText(f"Answered in {self.last_latency_ms:.1f} ms" if answered else "")
        self._show_input(prediction)
        self.prediction_made.emit(prediction)

    def _fit_answer(self) -> None:
        """The answer's font: large for a digit, smaller for a long number, so that it fits the label's
        width, which the text never changes (tests/test_gui_layout.py)."""
        font = self.prediction_label.font()
        text, width = self.prediction_label.text(), max(60, self.prediction_label.width() - 8)
        for size in range(54, 11, -2):
            font.setPointSize(size)
            if QFontMetrics(font).horizontalAdvance(text) <= width:
                break
        self.prediction_label.setFont(font)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_answer()

    def _show_input(self, prediction: Prediction | None) -> None:
        if prediction is None or prediction.prepared.empty:
            pixels = np.zeros((28, 28), np.float32)
        else:
            pixels = prediction.prepared.pixels
        gray = (np.clip(pixels, 0, 1) * 255).astype(np.uint8)
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
        if (
            self.saliency_check.isChecked()
            and prediction is not None
            and self.predictor is not None
            and not prediction.prepared.empty
        ):
            heat = self.predictor.saliency(prediction.prepared)[:, :, None]
            red = np.array([255.0, 40.0, 0.0], dtype=np.float32)
            rgb = (rgb.astype(np.float32) * (1 - heat) + red * heat).clip(0, 255).astype(np.uint8)
        rgb = np.ascontiguousarray(rgb)
        image = QImage(rgb.data, 28, 28, 28 * 3, QImage.Format.Format_RGB888).copy()
        pixmap = QPixmap.fromImage(image).scaled(
            INPUT_VIEW_SIZE,
            INPUT_VIEW_SIZE,
            Qt.AspectRatioMode.IgnoreAspectRatio,
            Qt.TransformationMode.FastTransformation,
        )
        self.model_input_view.setPixmap(pixmap)

    # -- images ---------------------------------------------------------------------------------------------
    def open_image(self, path: str) -> bool:
        """Classify an image file as ``predict`` does (the same probabilities), shown on the canvas with its
        aspect ratio; a file that cannot be read is said under the canvas, where the user looked."""
        try:
            gray = load_image(path)
        except UserError as exc:
            say(self.canvas_notice, str(exc))
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
