"""A drawing surface with a round pen, undo, image drops, and boxes around the digits read.

It is square, or wide (``WIDE`` times as wide as tall) for writing numbers. Strokes are kept as lists of
points in units of the surface's height (x from 0 to its aspect ratio, y from 0 to 1), so resizing the
window keeps the drawing, and the picture handed to the model is always rendered ``RENDER_SIZE`` pixels
tall whatever the widget's size. Mouse, pen and touch input all arrive as mouse events (Qt synthesises them for
tablets and touch screens that the widget does not handle itself).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QMimeData, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDropEvent,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from engine.images import IMAGE_SUFFIXES

RENDER_SIZE = 280
WIDE = 3.0  # the wide surface's width per height: six digits side by side
DEFAULT_PEN = 0.065  # pen diameter as a fraction of the canvas: MNIST-like strokes for a digit that fills it
MAX_UNDO = 100  # steps Undo can go back


class DrawCanvas(QWidget):
    """``stroke_changed`` fires while drawing (for throttled live prediction); ``stroke_finished`` after
    each stroke; ``cleared`` when empty again; ``image_dropped`` with the path of a dropped image file."""

    stroke_changed = Signal()
    stroke_finished = Signal()
    cleared = Signal()
    image_dropped = Signal(str)
    image_restored = Signal()  # Undo brought an image back
    digit_key = Signal(int)  # a digit key pressed while the canvas has focus: "that's a ..."

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("drawCanvas")
        self.setMinimumSize(200, 200)
        # it takes the room it is given and draws the largest square that fits (not height-for-width, which
        # in a scroll area made the panel as tall as it is wide and pushed the bars out of sight)
        self.setSizePolicy(QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding))
        self.setAcceptDrops(True)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # drawing gives it focus, for the digit keys
        self.setToolTip(
            "Draw a digit with the mouse or a pen. Drop an image file here to classify it, or a "
            "checkpoint (.pt) to open it."
        )
        self.strokes: list[tuple[float, list[QPointF]]] = []  # (pen width fraction, points)
        self.pen_fraction = DEFAULT_PEN
        self.background: QImage | None = None  # an opened or dropped image, shown instead of strokes
        self.source: Any = None  # what the background was made from, for whoever reads the canvas
        self.aspect = 1.0  # width per height of the drawing surface
        self.boxes: list[tuple[int, int, int, int]] = []  # digits read, in pixels of the image read
        self.boxes_of: tuple[int, int] = (RENDER_SIZE, RENDER_SIZE)  # that image's (width, height)
        self.selected_box: int | None = None
        self.show_boxes = True
        self._drawing = False
        self._history: list[tuple[list[tuple[float, list[QPointF]]], QImage | None, Any]] = []  # what Undo restores

    # -- geometry -------------------------------------------------------------------------------------------
    def sizeHint(self) -> QSize:
        return QSize(round(320 * self.aspect), 320)

    def _area(self) -> QRectF:
        """The largest rectangle of the surface's aspect ratio that fits, centred."""
        height = min(self.height(), self.width() / self.aspect)
        width = height * self.aspect
        return QRectF((self.width() - width) / 2, (self.height() - height) / 2, width, height)

    def _to_unit(self, pos: QPointF) -> QPointF:
        area = self._area()
        return QPointF((pos.x() - area.x()) / area.height(), (pos.y() - area.y()) / area.height())

    def set_aspect(self, aspect: float) -> None:
        """Square (1) or wide; the strokes keep their place from the left edge."""
        self.aspect = aspect
        # no wider than a square canvas needs, so that ticking Wide never widens the panel beyond its room
        width = round(200 * min(aspect, 1.5))
        self.setMinimumSize(width, max(100, round(width / aspect)))
        self.updateGeometry()
        self.update()

    def set_boxes(
        self, boxes: list[tuple[int, int, int, int]], of_size: tuple[int, int], selected: int | None = None
    ) -> None:
        """Outline the digits read: ``(x, y, width, height)`` in pixels of an image ``of_size`` (w, h)."""
        self.boxes, self.boxes_of, self.selected_box = list(boxes), of_size, selected
        self.update()

    def set_show_boxes(self, show: bool) -> None:
        self.show_boxes = show
        self.update()

    # -- state ----------------------------------------------------------------------------------------------
    def is_empty(self) -> bool:
        return not self.strokes and self.background is None

    def set_pen_fraction(self, fraction: float) -> None:
        self.pen_fraction = fraction

    def can_undo(self) -> bool:
        return bool(self._history)

    def _remember(self) -> None:
        """Keep what is shown now, for Undo: every stroke, Clear and image is one step back."""
        self._history.append(([(f, list(points)) for f, points in self.strokes], self.background, self.source))
        del self._history[:-MAX_UNDO]

    def clear(self) -> None:
        if self.is_empty():
            return
        self._remember()
        self.strokes.clear()
        self.background = self.source = None
        self.update()
        self.cleared.emit()

    def undo(self) -> None:
        """Back one step: the last stroke, a Clear, or an image shown."""
        if not self._history:
            return
        self.strokes, self.background, self.source = self._history.pop()
        self.update()
        if self.is_empty():
            self.cleared.emit()
        elif self.background is not None and not self.strokes:
            self.image_restored.emit()
        else:
            self.stroke_finished.emit()

    def set_image(self, image: QImage, source: Any = None) -> None:
        """Show an image (an opened file, a test sample) in place of the drawing; ``source``: what it was made
        from (kept with it, through Undo too)."""
        self._remember()
        self.strokes = []
        self.background = image.convertToFormat(QImage.Format.Format_Grayscale8)
        self.source = source
        self.update()

    # -- input ----------------------------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        self._remember()
        if self.background is not None:  # drawing over a loaded image starts a fresh drawing
            self.background = self.source = None
        self._drawing = True
        self.strokes.append((self.pen_fraction, [self._to_unit(event.position())]))
        self.update()
        self.stroke_changed.emit()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if Qt.Key.Key_0 <= key <= Qt.Key.Key_9 and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            self.digit_key.emit(key - Qt.Key.Key_0)
            return
        super().keyPressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if not self._drawing or not event.buttons() & Qt.MouseButton.LeftButton:
            return
        self.strokes[-1][1].append(self._to_unit(event.position()))
        self.update()
        self.stroke_changed.emit()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton or not self._drawing:
            return
        self._drawing = False
        self.strokes[-1][1].append(self._to_unit(event.position()))
        self.update()
        self.stroke_finished.emit()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if dropped_file(event.mimeData(), IMAGE_SUFFIXES) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        path = dropped_file(event.mimeData(), IMAGE_SUFFIXES)
        if path is not None:
            event.acceptProposedAction()
            self.image_dropped.emit(path)

    # -- rendering ------------------------------------------------------------------------------------------
    def _fitted(self, area: QRectF) -> QRectF:
        """Where the background image is shown: its aspect ratio kept, centred (what the model reads is not
        stretched); the whole area for a drawing."""
        if self.background is None:
            return area
        size = self.background.size().scaled(area.size().toSize(), Qt.AspectRatioMode.KeepAspectRatio)
        fitted = QRectF(0, 0, size.width(), size.height())
        fitted.moveCenter(area.center())
        return fitted

    def _paint(self, painter: QPainter, area: QRectF) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(area, QColor("white"))
        if self.background is not None:
            painter.drawImage(self._fitted(area), self.background)
            return
        for fraction, points in self.strokes:
            pen = QPen(
                QColor("black"),
                fraction * area.height(),
                Qt.PenStyle.SolidLine,
                Qt.PenCapStyle.RoundCap,
                Qt.PenJoinStyle.RoundJoin,
            )
            painter.setPen(pen)
            mapped = [QPointF(area.x() + p.x() * area.height(), area.y() + p.y() * area.height()) for p in points]
            if len(mapped) == 1:
                painter.drawPoint(mapped[0])
                continue
            path = QPainterPath(mapped[0])
            for point in mapped[1:]:
                path.lineTo(point)
            painter.drawPath(path)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().window())
        area = self._area()
        self._paint(painter, area)
        painter.setPen(QPen(QColor(160, 160, 160), 1))
        painter.drawRect(area.adjusted(0, 0, -1, -1))
        if self.show_boxes and len(self.boxes) > 1:
            shown = self._fitted(area)
            sx, sy = shown.width() / max(self.boxes_of[0], 1), shown.height() / max(self.boxes_of[1], 1)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            for k, (x, y, w, h) in enumerate(self.boxes):
                chosen = k == self.selected_box
                painter.setPen(QPen(QColor(31, 79, 168) if chosen else QColor(90, 160, 230), 3 if chosen else 1.5))
                painter.drawRect(QRectF(shown.x() + x * sx - 3, shown.y() + y * sy - 3, w * sx + 6, h * sy + 6))
        painter.end()

    def stroke_points(self, size: int = RENDER_SIZE) -> list[np.ndarray]:
        """Each stroke's points, in drawing order, as (n, 2) arrays of (x, y) in the pixels of
        ``to_array(size)``: how the drawing was drawn, for the reader to group strokes into digits."""
        return [np.array([(p.x() * size, p.y() * size) for p in points], np.float64) for _, points in self.strokes]

    def to_array(self, size: int = RENDER_SIZE) -> np.ndarray:
        """The drawing as a uint8 grayscale array ``size`` pixels tall and as wide as the surface's aspect
        ratio makes it (dark ink on white), independent of the widget's size."""
        width = round(size * self.aspect)
        image = QImage(width, size, QImage.Format.Format_Grayscale8)
        image.fill(255)
        painter = QPainter(image)
        self._paint(painter, QRectF(0, 0, width, size))
        painter.end()
        return qimage_to_array(image)


def qimage_to_array(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_Grayscale8)
    width, height = image.width(), image.height()
    buffer = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.bytesPerLine() * height)
    return buffer.reshape(height, image.bytesPerLine())[:, :width].copy()


def array_to_qimage(array: np.ndarray) -> QImage:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    height, width = array.shape
    return QImage(array.data, width, height, width, QImage.Format.Format_Grayscale8).copy()


def dropped_file(mime: QMimeData, suffixes: Collection[str]) -> str | None:
    """The first local file among dropped data whose suffix is one of ``suffixes``, if any."""
    for url in mime.urls() if mime.hasUrls() else []:
        if url.isLocalFile() and Path(url.toLocalFile()).suffix.lower() in suffixes:
            return url.toLocalFile()
    return None
