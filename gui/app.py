"""Starting the desktop app: one QApplication, one MainWindow, the event loop."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

NO_DISPLAY = ("no display to open the window on ($DISPLAY and $WAYLAND_DISPLAY are not set): run it in a "
              "desktop session, or use the command line (digit-studio --help lists train, evaluate, predict, "
              "export and more)")


def missing_display(environ: Mapping[str, str] = os.environ, platform: str = sys.platform) -> str | None:
    """Why no window can open, said before Qt tries: without a display Qt aborts the process, after a
    message that suggests reinstalling. On Linux and the BSDs a window needs an X11 or a Wayland display
    (or a platform named in $QT_QPA_PLATFORM, such as offscreen); None when one may be there."""
    if not platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return None
    if any(environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        return None
    return NO_DISPLAY


def run(argv: list[str] | None = None) -> int:
    problem = missing_display()
    if problem is not None:
        print(f"digit-studio: {problem}", file=sys.stderr)
        return 2

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
