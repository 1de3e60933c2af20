"""Starting the desktop app where no window can open."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gui.app import NO_DISPLAY, missing_display

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("environ", "platform", "missing"),
    [
        ({}, "linux", True),
        ({"DISPLAY": ":0"}, "linux", False),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", False),
        ({"QT_QPA_PLATFORM": "offscreen"}, "linux", False),
        ({"DISPLAY": ""}, "freebsd14", True),
        ({}, "darwin", False),  # macOS and Windows always have their window system
        ({}, "win32", False),
    ],
)
def test_a_window_needs_a_display_on_linux_and_the_bsds(environ, platform, missing) -> None:
    assert (missing_display(environ, platform) == NO_DISPLAY) is missing


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="displays are an X11/Wayland matter")
def test_without_a_display_the_app_says_so_instead_of_aborting() -> None:
    environ = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "main.py")], env=environ, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and result.stderr.strip() == f"digit-studio: {NO_DISPLAY}"


def test_an_error_in_a_slot_is_printed_and_shown_once_at_a_time(qapp, monkeypatch, capsys) -> None:
    from PySide6.QtWidgets import QMessageBox

    from gui.app import report_unexpected_errors

    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    shown: list[str] = []

    def critical(parent, title, text):
        shown.append(text)
        sys.excepthook(RuntimeError, RuntimeError("again, while the first dialog is open"), None)

    monkeypatch.setattr(QMessageBox, "critical", critical)
    report_unexpected_errors()
    try:
        raise ValueError("a bug")
    except ValueError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    assert shown == [
        "Something went wrong inside Digit Studio: ValueError: a bug\n\n"
        "The app keeps running; the details were printed on its terminal."
    ]
    err = capsys.readouterr().err
    assert "Traceback" in err and "ValueError: a bug" in err and "again, while the first dialog is open" in err
