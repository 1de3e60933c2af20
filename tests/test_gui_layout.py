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


@pytest.mark.parametrize("size", [QSize(1024, 600), QSize(1280, 800)])
def test_nothing_moves_under_the_pen(window, qtbot, tmp_path, size) -> None:
    """Notices, long numbers and doubts change no layout: the canvas keeps its place and size through
    them, as every stroke is drawn (a canvas that jumped mid-stroke put the stroke where the pen was not)."""
    from PySide6.QtCore import QPoint

    from tests.gui_helpers import drag

    window.resize(size)
    panel = window.recognition
    panel.wide_check.setChecked(True)
    qtbot.wait(50)
    canvas = panel.canvas

    def where() -> tuple:
        return canvas.mapTo(window, QPoint(0, 0)), canvas.size(), tuple(window.splitter.sizes())

    before = where()
    bad = tmp_path / "a picture with a rather long name that is not a picture at all.png"
    bad.write_text("not an image")
    panel.open_image(str(bad))  # a long notice under the canvas
    assert "not an image" in panel.canvas_notice.toolTip() or panel.canvas_notice.text()
    assert where() == before
    panel.canvas.clear()
    for k in range(14):  # a fourteen-digit number, drawn stroke by stroke
        x = 0.15 + 0.19 * k
        drag(canvas, [(x, 0.25), (x, 0.5), (x, 0.75)])
        qtbot.wait(5)
        assert where() == before, f"moved at stroke {k + 1}"
    assert len(panel.digit_buttons) >= 10 and len(panel.prediction_label.text()) >= 10
    drag(canvas, [(0.1, 0.1), (2.9, 0.9), (0.1, 0.9), (2.9, 0.1)])  # a scribble over it all: a doubt
    assert where() == before
