"""Starting the desktop app: one QApplication, the main window, the event loop."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from engine.shipped import shipped

NO_DISPLAY = (
    "no display to open the window on ($DISPLAY and $WAYLAND_DISPLAY are not set): run it in a "
    "desktop session, or use the command line (digit-studio --help lists train, evaluate, predict, "
    "export and more)"
)


def missing_display(environ: Mapping[str, str] = os.environ, platform: str = sys.platform) -> str | None:
    """Why no window can open, said before Qt tries: without a display Qt aborts the process, after a
    message that suggests reinstalling. On Linux and the BSDs a window needs an X11 or a Wayland display
    (or a platform named in $QT_QPA_PLATFORM, such as offscreen); None when one may be there."""
    if not platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return None
    if any(environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        return None
    return NO_DISPLAY


def report_unexpected_errors() -> None:
    """A bug in a slot must not pass unseen. PySide6 hands such an exception to ``sys.excepthook`` and
    goes on, so the user saw nothing happen; now the traceback still goes to stderr, and a dialog says
    what failed. Only one dialog at a time (an error repeated on every repaint must not stack them), and
    only on the GUI thread, where widgets may be made; workers report their own errors (gui.workers)."""
    import threading

    from PySide6.QtWidgets import QApplication, QMessageBox

    previous = sys.excepthook
    showing = False

    def hook(kind: type[BaseException], value: BaseException, traceback: object) -> None:
        nonlocal showing
        previous(kind, value, traceback)
        if showing or QApplication.instance() is None or threading.current_thread() is not threading.main_thread():
            return
        showing = True
        try:
            QMessageBox.critical(
                None,
                "Internal error",
                f"Something went wrong inside Digit Studio: {kind.__name__}: {value}\n\n"
                "The app keeps running; the details were printed on its terminal.",
            )
        finally:
            showing = False

    sys.excepthook = hook


APP_ICON = shipped("icons", "digit-studio.svg")


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

    from PySide6.QtCore import Qt
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QSplashScreen

    # Something on screen at once: importing PyTorch, which the window needs, takes seconds on a busy machine
    icon = QIcon(str(APP_ICON))
    app.setWindowIcon(icon)  # dialogs' too
    splash = QSplashScreen(icon.pixmap(160, 160))
    splash.showMessage("Starting Digit Studio...", Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignHCenter)
    splash.show()
    app.processEvents()

    from gui.main_window import open_main_window

    report_unexpected_errors()
    window = open_main_window()
    splash.finish(window)
    return app.exec()
