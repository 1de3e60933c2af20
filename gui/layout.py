"""The window's size and the panels' scrolling: what lets it fit a 1024x600 screen and fill a large one
(tests/test_gui_layout.py)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtWidgets import QScrollArea, QSplitter, QWidget

DEFAULT_SIZE = QSize(1440, 860)
FRAME_ALLOWANCE = QSize(16, 48)  # room on the screen for the window manager's frame and title bar


def fitted_size(preferred: QSize, minimum: QSize, available: QSize) -> QSize:
    """The first-launch window size: ``preferred``, shrunk to fit a smaller screen's ``available`` area
    with its frame (a 1366x768 laptop, say), but never below the window's ``minimum``. A saved size is
    restored instead, and Qt then moves a window that would be off screen."""
    room = available - FRAME_ALLOWANCE
    return preferred.boundedTo(room).expandedTo(minimum)


def vertical_scroll(panel: QWidget) -> QScrollArea:
    """``panel`` in a scroll area that scrolls up and down only, at least as wide as the panel needs, now
    and whenever that changes (the canvas turned wide, say), so that nothing of it is ever cut off."""
    scroll = QScrollArea()
    scroll.setWidget(panel)
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    _MinimumWidthFollower(panel, scroll)
    return scroll


class _MinimumWidthFollower(QObject):
    """Keeps a scroll area as wide as its panel's minimum, which Qt re-lays out on a LayoutRequest."""

    def __init__(self, panel: QWidget, scroll: QScrollArea) -> None:
        super().__init__(scroll)
        self.panel, self.scroll = panel, scroll
        panel.installEventFilter(self)
        self._follow()

    def _follow(self) -> None:
        self.scroll.setMinimumWidth(self.panel.minimumSizeHint().width() + 24)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:
            self._follow()
        return False


def make_room_for_the_canvas(splitter: QSplitter, wide: bool) -> None:
    """A wide canvas (the splitter's third part) takes half the window from the tabs (its second); a square
    one gives it back."""
    sizes = splitter.sizes()
    total = sum(sizes)
    wanted = total // 2 if wide else min(sizes[2], max(440, total * 3 // 10))
    moved = min(wanted - sizes[2], sizes[1] - splitter.widget(1).minimumSizeHint().width())
    if (wide and moved > 0) or (not wide and moved < 0):
        splitter.setSizes([sizes[0], sizes[1] - moved, sizes[2] + moved])
