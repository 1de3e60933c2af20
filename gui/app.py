"""Starting the desktop app: one QApplication, one MainWindow, the event loop."""

from __future__ import annotations

import sys


def run(argv: list[str] | None = None) -> int:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("Digit Studio")
    app.setOrganizationName("DigitStudio")
    app.setApplicationDisplayName("Digit Studio")

    from PySide6.QtGui import QIcon

    from gui.main_window import APP_ICON, MainWindow

    app.setWindowIcon(QIcon(str(APP_ICON)))  # dialogs' too
    window = MainWindow()
    window.show()
    return app.exec()
