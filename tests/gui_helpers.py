"""Helpers for GUI tests: real mouse strokes on a widget."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget


def drag(widget: QWidget, points: list[tuple[float, float]]) -> None:
    """Press the left button at the first point, move through the rest with it held, release at the last.

    Points are fractions of the widget's drawing square (0..1).
    """
    side = min(widget.width(), widget.height())
    ox, oy = (widget.width() - side) / 2, (widget.height() - side) / 2
    pixels = [QPoint(int(ox + x * side), int(oy + y * side)) for x, y in points]
    QTest.mousePress(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pixels[0])
    for point in pixels[1:]:
        local = QPointF(point)
        event = QMouseEvent(QEvent.Type.MouseMove, local, QPointF(widget.mapToGlobal(point)),
                            Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(widget, event)
    QTest.mouseRelease(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pixels[-1])
