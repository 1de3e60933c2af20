"""The main window's size: it fits a laptop screen, first launch included, whatever the data and devices."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSize

from gui.layout import DEFAULT_SIZE, FRAME_ALLOWANCE, fitted_size

# A 1024x600 screen (a netbook; a 1366x768 laptop at 125 % scaling gives 1093x614) less a 40-pixel task bar.
SMALL_SCREEN = QSize(1024, 560)


def test_the_window_fits_a_small_screen(window) -> None:
    room = SMALL_SCREEN - FRAME_ALLOWANCE
    minimum = window.minimumSizeHint()
    assert minimum.width() <= room.width() and minimum.height() <= room.height(), minimum


def test_the_window_can_be_shrunk_to_its_minimum_and_keeps_every_panel(window, qtbot) -> None:
    window.resize(window.minimumSizeHint())
    qtbot.waitUntil(lambda: window.size() == window.minimumSizeHint())
    for panel in (window.training_panel.parentWidget(), window.tabs, window.recognition):
        assert panel.isVisible() and panel.width() > 200, panel
    assert window.recognition.canvas.width() >= 200 and window.recognition.canvas.height() >= 200


def test_long_names_do_not_widen_the_window(window, qtbot) -> None:
    window.tabs.setCurrentWidget(window.browser)
    before = window.minimumSizeHint().width()
    window.training_panel.add_folder("/home/someone/" + "a-long-folder-name/" * 12 + "mnist")
    window.browser.page_label.setText("a data set with a long name: page 1 of 1,000 (120,000 images)")
    qtbot.wait(10)  # the layouts' update requests
    assert window.minimumSizeHint().width() <= before


@pytest.mark.parametrize(
    ("available", "expected"),
    [
        (QSize(2560, 1400), DEFAULT_SIZE),  # a large screen: the designed size
        (QSize(1366, 728), QSize(1350, 680)),  # a laptop: the screen less the frame
        (QSize(800, 560), QSize(1100, 600)),  # smaller than the window can be: its minimum
    ],
)
def test_first_launch_size_fits_the_screen(available: QSize, expected: QSize) -> None:
    assert fitted_size(DEFAULT_SIZE, QSize(1100, 600), available) == expected


def test_confusion_matrix_counts_stay_whole_in_a_narrow_window(qtbot) -> None:
    from PySide6.QtGui import QFontMetrics
    from PySide6.QtWidgets import QTableWidgetItem

    from gui.evaluation_view import CountMatrix

    matrix = CountMatrix(10, 10)
    qtbot.addWidget(matrix)
    for row in range(10):
        for col in range(10):
            matrix.setItem(row, col, QTableWidgetItem("1135" if row == col else "0"))
    own_size = matrix.font().pointSizeF()

    def fits() -> bool:
        item = matrix.item(1, 1)
        return QFontMetrics(item.font()).horizontalAdvance(item.text()) <= matrix.columnWidth(1) - 4

    matrix.resize(600, 300)
    matrix.show()
    qtbot.waitExposed(matrix)
    assert matrix.cell_point_size == own_size and fits()
    matrix.resize(330, 300)  # the matrix beside the per-class bars in a 1280-pixel window
    qtbot.waitUntil(lambda: matrix.cell_point_size < own_size)
    assert fits()
    matrix.resize(600, 300)
    qtbot.waitUntil(lambda: matrix.cell_point_size == own_size)


def test_the_window_has_the_app_icon(window) -> None:
    from gui.main_window import APP_ICON

    assert APP_ICON.is_file()
    pixmap = window.windowIcon().pixmap(64, 64)
    assert not pixmap.isNull() and pixmap.width() == 64  # the SVG rendered (Qt's svg plugin is installed)
    assert pixmap.toImage().pixelColor(32, 56).blue() > 100  # its blue tile, not a blank
