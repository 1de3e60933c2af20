"""Starting the desktop app: one QApplication, one MainWindow, the event loop."""

from __future__ import annotations

import sys


def run(argv: list[str] | None = None) -> int:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("Digit Studio")
    app.setOrganizationName("DigitStudio")
    app.setApplicationDisplayName("Digit Studio")

    from gui.main_window import MainWindow

    window = MainWindow()
    window.show()
    return app.exec()
