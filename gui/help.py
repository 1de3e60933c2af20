"""Help: the keyboard shortcuts, the user's manual and the About box.

The manual is README.md: read from the checkout beside the packages, or, in an installed copy, from the
distribution's metadata, where pyproject's ``readme`` puts it; it is shown in a window of the app, so it
needs no Markdown viewer on the system.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from importlib import metadata

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QDialog, QTextBrowser, QVBoxLayout, QWidget

from engine.shipped import DISTRIBUTION, PROJECT_ROOT
from gui import actions
from gui.dialogs import Dialogs
from gui.prediction_panel import CANVAS_KEYS

APP_NAME = "Digit Studio"


class Help(QObject):
    """The Help menu's three answers, over ``parent``; ``model`` tells which model answers on the canvas
    and ``device`` where training runs, for the About box."""

    def __init__(self, parent: QWidget, dialogs: Dialogs, device: Callable[[], str], model: Callable[[], str]) -> None:
        super().__init__(parent)
        self.window, self.dialogs, self.device, self.model = parent, dialogs, device, model

    def show_shortcuts(self) -> None:
        self.dialogs.rich_text("Keyboard shortcuts", shortcuts_html())

    def show_manual(self) -> bool:
        """The manual in a window of its own (not modal); whether there was one to show."""
        text = manual_text()
        if text is None:
            self.dialogs.inform("Documentation", "The manual (README.md) is not installed with this copy of the app.")
            return False
        window = QDialog(self.window, objectName="manualWindow")
        window.setWindowTitle(f"{APP_NAME} manual")
        browser = QTextBrowser(window, objectName="manualText")
        browser.setOpenExternalLinks(True)
        browser.setSearchPaths([str(PROJECT_ROOT)])  # the screenshot, in a checkout
        browser.setMarkdown(text)
        QVBoxLayout(window).addWidget(browser)
        window.resize(760, 640)
        window.show()
        return True

    def show_about(self) -> None:
        self.dialogs.about(f"About {APP_NAME}", about_html(self.device(), self.model()))


def shortcuts_html() -> str:
    rows = "".join(
        f"<tr><td><b>{html.escape(keys)}</b></td><td>{html.escape(what)}</td></tr>"
        for keys, what in actions.shortcut_rows(CANVAS_KEYS)
    )
    return f"<table cellspacing='6'>{rows}</table>"


def manual_text() -> str | None:
    """README.md of the checkout, else of the installed distribution; None when neither is there."""
    try:
        return (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    except OSError:
        pass
    try:
        return metadata.metadata(DISTRIBUTION).get_payload() or None  # type: ignore[attr-defined]
    except metadata.PackageNotFoundError:
        return None


def about_html(device: str, model: str) -> str:
    import PySide6
    import torch
    from PySide6.QtCore import qVersion

    from engine import __version__
    from engine.lenet_features import kernel_status

    kernel = kernel_status(build=False)  # the warm-up builds it; this thread must not wait for a compiler
    kernel_line = (
        "being prepared"
        if kernel is None
        else "in use"
        if kernel.available
        else f"not in use ({html.escape(kernel.reason)})"
    )
    return (
        f"<h3>{APP_NAME} {__version__}</h3>"
        "<p>Train a convolutional network on handwritten digits and recognise the digits you draw.</p>"
        f"<p>PyTorch {torch.__version__}<br>Qt {qVersion()} (PySide6 {PySide6.__version__})<br>"
        f"Device in use: {device}<br>Model on the canvas: {model}<br>"
        f"LeNet's fused CPU kernel: {kernel_line}</p>"
    )
