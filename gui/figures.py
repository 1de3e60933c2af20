"""Pictures for the page, rendered from the data: never a grab of the widgets on screen, which would carry
their scroll bars, controls, clipped titles and whatever size the window happened to have.

Plots are rendered by pyqtgraph's ``ImageExporter`` from their plot items at a fixed size; a confusion
matrix is drawn cell by cell from its counts; :func:`page` puts them under a title, each with a caption.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter

MARGIN = 24
PLOT_WIDTH = 900  # pixels of an exported plot, whatever its size on screen


def plot_image(plot: pg.PlotItem, width: int = PLOT_WIDTH) -> QImage:
    """``plot`` rendered from its items at ``width`` pixels, as high as its on-screen shape makes it (the
    exporter scales the item's layout: another shape would distort its axes)."""
    from pyqtgraph.exporters import ImageExporter

    view = plot.getViewBox()
    for _ in range(2):  # a curve clipped to the view reports what the old view showed: twice, to hold it all
        view.updateAutoRange()
    exporter = ImageExporter(plot)
    exporter.parameters()["width"] = width
    return exporter.export(toBytes=True)


def matrix_image(counts: np.ndarray, names: Sequence[str], cell: int = 44) -> QImage:
    """A confusion matrix drawn from its counts: rows the true classes, columns the predicted ones, the
    diagonal green, the mistakes shaded by how many; every count whole, whatever its size."""
    size = len(names)
    header = 90
    image = QImage(header + size * cell + 1, header + size * cell + 1, QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    font = QFont(painter.font())
    font.setPointSize(8)
    painter.setFont(font)
    worst = max(1, int((counts - np.diag(np.diag(counts))).max(initial=0)))
    for row in range(size):
        for column in range(size):
            rect = QRect(header + column * cell, header + row * cell, cell, cell)
            count = int(counts[row, column])
            if row == column:
                painter.fillRect(rect, QColor(200, 235, 200))
            elif count:
                painter.fillRect(rect, QColor(255, round(255 - 150 * count / worst), round(255 - 150 * count / worst)))
            painter.setPen(QColor(170, 170, 170))
            painter.drawRect(rect)
            painter.setPen(QColor("black"))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, f"{count:,}")
    for k, name in enumerate(names):
        short = name if len(name) <= 12 else name[:11] + "…"
        painter.drawText(
            QRect(0, header + k * cell, header - 6, cell),
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
            short,
        )
        painter.save()
        painter.translate(header + k * cell + cell / 2, header - 6)
        painter.rotate(-90)
        painter.drawText(
            QRect(0, -cell // 2, header - 6, cell), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, short
        )
        painter.restore()
    painter.drawText(QRect(0, 0, header, header), Qt.AlignmentFlag.AlignCenter, "true \u2193\npredicted \u2192")
    painter.end()
    return image


def page(title: str, subtitle: str, panels: Sequence[tuple[str, QImage]], side_by_side: bool = False) -> QImage:
    """``panels`` (a caption and a picture each) under a bold title and a line of detail, on white."""
    title_height, caption_height = 70, 26
    widths = [image.width() for _, image in panels]
    heights = [image.height() for _, image in panels]
    if side_by_side:
        width = sum(widths) + MARGIN * (len(panels) + 1)
        height = title_height + caption_height + max(heights) + MARGIN
    else:
        width = max(widths) + 2 * MARGIN
        height = title_height + sum(heights) + caption_height * len(panels) + MARGIN
    report = QImage(width, height, QImage.Format.Format_RGB32)
    report.fill(QColor("white"))
    painter = QPainter(report)
    font = QFont(painter.font())
    font.setPointSize(15)
    font.setBold(True)
    painter.setFont(font)
    painter.drawText(MARGIN, MARGIN + 18, title)
    font.setPointSize(10)
    font.setBold(False)
    painter.setFont(font)
    painter.drawText(MARGIN, MARGIN + 40, subtitle)
    x, y = MARGIN, title_height
    for caption, image in panels:
        painter.drawText(x, y + caption_height - 8, caption)
        painter.drawImage(x, y + caption_height, image)
        if side_by_side:
            x += image.width() + MARGIN
        else:
            y += caption_height + image.height()
    painter.end()
    return report
