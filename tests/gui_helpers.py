"""Helpers for GUI tests: real mouse strokes on a widget, files dropped on it, a checkpoint opened, dialogs
answered by script."""

from __future__ import annotations

import warnings
from pathlib import Path

from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget

from gui.dialogs import Dialogs


def drag(widget: QWidget, points: list[tuple[float, float]]) -> None:
    """Press the left button at the first point, move through the rest with it held, release at the last.

    Points are in units of the drawing area's height (y from 0 to 1; x from 0 to 1 on a square canvas, to
    its aspect ratio on a wide one), or of the widget's largest centred square for other widgets.
    """
    aspect = getattr(widget, "aspect", 1.0)
    side = min(widget.height(), widget.width() / aspect)
    ox, oy = (widget.width() - side * aspect) / 2, (widget.height() - side) / 2
    pixels = [QPoint(int(ox + x * side), int(oy + y * side)) for x, y in points]
    QTest.mousePress(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pixels[0])
    for point in pixels[1:]:
        local = QPointF(point)
        event = QMouseEvent(
            QEvent.Type.MouseMove,
            local,
            QPointF(widget.mapToGlobal(point)),
            Qt.MouseButton.NoButton,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(widget, event)
    QTest.mouseRelease(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pixels[-1])


def drop_file(window: QWidget, over: QWidget, path: Path | str) -> bool:
    """Drag a file over the centre of ``over`` and drop it; returns whether the drop was taken.

    The events go where Qt sends them: to the innermost widget under the point that takes drops
    (``QWidgetWindow``), then to its parents that take drops while it is refused (``QApplication.notify``).
    """
    centre = over.mapTo(window, QPoint(over.width() // 2, over.height() // 2))
    target = window.childAt(centre) or window
    while target is not window and not target.acceptDrops():
        target = target.parentWidget()
    if not target.acceptDrops():
        return False
    local = target.mapFrom(window, centre)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    mime.setText(str(path))  # file managers offer the path as text too, which text fields take
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    with warnings.catch_warnings():  # the QPoint constructor, deprecated in Qt 6.12, is the one older Qt has
        warnings.simplefilter("ignore", DeprecationWarning)
        enter = QDragEnterEvent(local, Qt.DropAction.CopyAction, mime, buttons, modifiers)
    enter.ignore()
    QApplication.sendEvent(target, enter)
    if not enter.isAccepted():
        return False
    drop = QDropEvent(QPointF(local), Qt.DropAction.CopyAction, mime, buttons, modifiers)
    drop.ignore()
    QApplication.sendEvent(target, drop)
    return drop.isAccepted()


def open_checkpoint(qtbot, window, path: Path | str, timeout: int = 15000) -> bool:
    """Open a checkpoint in the window as File > Open does, and wait until it is on hand or refused."""
    with qtbot.waitSignal(window.checkpoint_opened, timeout=timeout) as blocker:
        window.document.open(path)
    return bool(blocker.args[0])


def train_one_epoch(window, qtbot) -> None:
    """Train LeNet for one epoch through the Train button, and wait until the run has ended."""
    panel = window.training_panel
    panel.model_combo.setCurrentIndex(panel.model_combo.findData("lenet"))
    panel.epochs_spin.setValue(1)
    with qtbot.waitSignal(window.training_finished, timeout=60000):
        qtbot.mouseClick(panel.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.session.running, timeout=5000)


class ScriptedDialogs(Dialogs):
    """The app's dialogs answered at once, as a test scripts them, with everything said kept: errors,
    messages, questions. Questions are answered Yes, and Discard for an unsaved model, unless a test sets
    ``confirm_answer`` or ``unsaved_answer``. File choices stay Qt's (tests patch QFileDialog)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.errors: list[str] = []
        self.informed: list[str] = []
        self.questions: list[str] = []
        self.shown: list[str] = []  # rich text: the keyboard help, the About box
        self.confirm_answer = True
        self.unsaved_answer = "discard"

    def error(self, title: str, message: str) -> None:
        self.errors.append(message)

    def inform(self, title: str, message: str, action: str | None = None) -> bool:
        self.informed.append(message)
        return False

    def rich_text(self, title: str, html: str) -> None:
        self.shown.append(html)

    def about(self, title: str, html: str) -> None:
        self.shown.append(html)

    def confirm(self, title: str, question: str) -> bool:
        self.questions.append(question)
        return self.confirm_answer

    def ask_unsaved(self, question: str) -> str:
        self.questions.append(question)
        return self.unsaved_answer
