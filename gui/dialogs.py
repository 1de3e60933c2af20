"""Every question, message and file choice the app puts to its user, as one object.

Controllers and views are handed a :class:`Dialogs` and never open a dialog themselves, so a test hands
them a scripted one (tests/gui_helpers.py) that answers at once and records what was said, instead of a
modal box that would wait for a click.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

if TYPE_CHECKING:
    from gui.settings import AppSettings

UNSAVED_ANSWERS = ("save", "discard", "cancel")


class Dialogs:
    """Modal dialogs over ``parent`` (the main window)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self.parent = parent

    def error(self, title: str, message: str) -> None:
        """A problem the user should know of; the app goes on."""
        QMessageBox.warning(self.parent, title, message)

    def inform(self, title: str, message: str, action: str | None = None) -> bool:
        """A message to read, with a button for the way forward (``action``): whether it was chosen."""
        box = QMessageBox(QMessageBox.Icon.Information, title, message, QMessageBox.StandardButton.Ok, self.parent)
        button = box.addButton(action, QMessageBox.ButtonRole.ActionRole) if action else None
        box.exec()
        return button is not None and box.clickedButton() is button

    def rich_text(self, title: str, html: str) -> None:
        QMessageBox.information(self.parent, title, html)

    def about(self, title: str, html: str) -> None:
        QMessageBox.about(self.parent, title, html)

    def confirm(self, title: str, question: str) -> bool:
        answer = QMessageBox.question(
            self.parent, title, question, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
        )
        return answer == QMessageBox.StandardButton.Yes

    def ask_unsaved(self, question: str) -> str:
        """Save, Discard or Cancel, as every document application asks: "save", "discard" or "cancel"."""
        buttons = (
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel
        )
        answer = QMessageBox.question(self.parent, "Unsaved model", question, buttons, QMessageBox.StandardButton.Save)
        return {QMessageBox.StandardButton.Save: "save", QMessageBox.StandardButton.Discard: "discard"}.get(
            answer, "cancel"
        )

    def open_file(self, title: str, start: Path, filters: str) -> str:
        """A file to open ("" when cancelled)."""
        return QFileDialog.getOpenFileName(self.parent, title, str(start), filters)[0]

    def save_file(self, title: str, start: Path, filters: str) -> tuple[str, str]:
        """A file to write ("" when cancelled) and the filter chosen."""
        return QFileDialog.getSaveFileName(self.parent, title, str(start), filters)

    def folder(self, title: str, start: Path) -> str:
        """A folder ("" when cancelled)."""
        return QFileDialog.getExistingDirectory(self.parent, title, str(start))


def ask_export_path(dialogs: Dialogs, settings: AppSettings, caption: str, name: str, filters: str) -> tuple[str, str]:
    """Where to write an export: a file dialog starting in the last export's folder, which it then
    remembers. Returns the path, empty when cancelled, and the filter chosen."""
    path, chosen = dialogs.save_file(caption, settings.exports_dir / name, filters)
    if path:
        settings.exports_dir = Path(path).parent
    return path, chosen
