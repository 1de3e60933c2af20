"""QSettings helpers: values read back in the type they were written with, and remembered folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def settings_list(settings: Any, key: str) -> list[str]:
    """A list of strings written with ``setValue``: INI files and some platforms hand back a one-item list
    as a plain string, and an empty one as None."""
    value = settings.value(key, [])
    if isinstance(value, str):
        return [value]
    return list(value or [])


def ask_export_path(parent: Any, settings: Any, caption: str, name: str, filters: str) -> tuple[str, str]:
    """Ask where to write an export (a file dialog starting in the last export's folder, which it then
    remembers). Returns the path, empty when cancelled, and the filter chosen."""
    from PySide6.QtWidgets import QFileDialog

    start_dir = Path(str(settings.value("paths/exports", str(Path.home()))))
    path, chosen = QFileDialog.getSaveFileName(parent, caption, str(start_dir / name), filters)
    if path:
        settings.setValue("paths/exports", str(Path(path).parent))
    return path, chosen
