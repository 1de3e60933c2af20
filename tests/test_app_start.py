"""Starting the desktop app where no window can open."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gui.app import NO_DISPLAY, missing_display

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("environ", "platform", "missing"), [
    ({}, "linux", True),
    ({"DISPLAY": ":0"}, "linux", False),
    ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", False),
    ({"QT_QPA_PLATFORM": "offscreen"}, "linux", False),
    ({"DISPLAY": ""}, "freebsd14", True),
    ({}, "darwin", False),  # macOS and Windows always have their window system
    ({}, "win32", False),
])
def test_a_window_needs_a_display_on_linux_and_the_bsds(environ, platform, missing) -> None:
    assert (missing_display(environ, platform) == NO_DISPLAY) is missing


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="displays are an X11/Wayland matter")
def test_without_a_display_the_app_says_so_instead_of_aborting() -> None:
    environ = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run([sys.executable, str(ROOT / "main.py")], env=environ, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and result.stderr.strip() == f"digit-studio: {NO_DISPLAY}"
