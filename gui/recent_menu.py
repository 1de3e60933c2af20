"""File > Open recent: the checkpoints opened or saved lately, then the autosaved runs."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QMenu

from gui.autosave import autosave_dir, autosaved_runs
from gui.document import CheckpointDocument


def fill_recent_menu(menu: QMenu, document: CheckpointDocument, enabled: bool) -> None:
    """One entry per recent file; a file that is gone is listed greyed out, so the list keeps its place
    should it come back; then the autosaved runs. Called whenever the menu opens or the list changes; the
    menu is disabled unless ``enabled`` (no run is on) and it has something to offer."""
    recent = document.recent()
    menu.clear()
    for path in recent:
        exists = Path(path).is_file()
        menu.addAction(path if exists else f"{path} (not found)", lambda _=False, p=path: document.open(p)).setEnabled(
            exists
        )
    autosaves = menu.findChild(QMenu, "autosaveMenu") or QMenu("&Autosaved runs", menu, objectName="autosaveMenu")
    autosaves.clear()
    menu.addMenu(autosaves)
    for path, when in autosaved_runs(autosave_dir()):
        autosaves.addAction(f"{path.name}  ({when})", lambda _=False, p=path: document.restore(p))
    autosaves.setEnabled(not autosaves.isEmpty())
    if recent:
        menu.addSeparator()
        menu.addAction("&Clear list", document.clear_recent).setObjectName("clearRecentAction")
    menu.setEnabled(enabled and (bool(recent) or autosaves.isEnabled()))
