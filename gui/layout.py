"""The window's size and the panels' scrolling: what lets it fit a 1024x600 screen and fill a large one
(tests/test_gui_layout.py)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
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
    """``panel`` in a scroll area that scrolls up and down only, as wide as the panel needs."""
    scroll = QScrollArea()
    scroll.setWidget(panel)
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setMinimumWidth(panel.minimumSizeHint().width() + 24)
    return scroll


def make_room_for_the_canvas(splitter: QSplitter, wide: bool) -> None:
    """A wide canvas (the splitter's third part) takes half the window from the tabs (its second); a square
    one gives it back."""
    sizes = splitter.sizes()
    total = sum(sizes)
    wanted = total // 2 if wide else min(sizes[2], max(440, total * 3 // 10))
    moved = min(wanted - sizes[2], sizes[1] - splitter.widget(1).minimumSizeHint().width())
    if (wide and moved > 0) or (not wide and moved < 0):
        splitter.setSizes([sizes[0], sizes[1] - moved, sizes[2] + moved])
