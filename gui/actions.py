"""Every action of the window, declared once: its id, text, shortcut, menu, what it calls and when it is
enabled. The menus and the keyboard help are built from this table (napari's app-model keeps its
actions so).

``call`` is a path of attributes from the window to what the action calls (``document.save``, or
``training_panel.train_button.click``); ``follows`` names a button whose enabled state the action mirrors
(Train, Pause, Stop, Evaluate: the menu and the keyboard click the button, and are enabled exactly when it
is); a checkable action is bound to an ``AppSettings`` flag (``setting``), read at start and written when
toggled.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from operator import attrgetter

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QWidget

from gui.settings import AppSettings

Key = QKeySequence.StandardKey | str | None


@dataclass(frozen=True)
class ActionSpec:
    id: str  # the QAction's objectName
    text: str
    menu: str  # a key of MENUS
    call: str = ""  # the path of attributes from the window to the callable
    shortcut: Key = None
    help: str = ""  # the keyboard help's words for it (actions with a shortcut)
    follows: str | None = None  # the path of attributes from the window to a button
    setting: str | None = None  # checkable: the AppSettings flag it shows and sets
    tip: str = ""
    separated: bool = False  # a separator before it


MENUS = {"file": "&File", "training": "&Training", "help": "&Help"}
RECENT_MENU_AFTER = "openCheckpointAction"  # File > Open recent follows Open, and is filled when it opens

ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec(
        "openCheckpointAction",
        "&Open checkpoint...",
        "file",
        "document.open_dialog",
        QKeySequence.StandardKey.Open,
        "Open a checkpoint",
    ),
    ActionSpec(
        "saveCheckpointAction",
        "&Save checkpoint",
        "file",
        "document.save",
        QKeySequence.StandardKey.Save,
        "Save the model on hand",
    ),
    ActionSpec(
        "saveAsCheckpointAction",
        "Save checkpoint &as...",
        "file",
        "document.save_as",
        QKeySequence.StandardKey.SaveAs,
        "Save it as...",
    ),
    ActionSpec("openImageAction", "Open &image...", "file", "open_image_dialog", separated=True),
    ActionSpec("openDataFolderAction", "Open data &folder...", "file", "open_data_folder_dialog"),
    ActionSpec("exportAction", "&Export model...", "file", "exporter.model_dialog"),
    ActionSpec("exportCurvesAction", "Export training &curves...", "file", "exporter.curves_dialog"),
    ActionSpec("quitAction", "&Quit", "file", "close", QKeySequence.StandardKey.Quit, "Quit", separated=True),
    ActionSpec(
        "trainAction",
        "&Train",
        "training",
        "training_panel.train_button.click",
        "Ctrl+Return",
        "Train",
        follows="training_panel.train_button",
    ),
    ActionSpec(
        "pauseAction",
        "&Pause / Resume",
        "training",
        "training_panel.pause_button.click",
        "Ctrl+P",
        "Pause or resume",
        follows="training_panel.pause_button",
    ),
    ActionSpec(
        "stopAction",
        "&Stop",
        "training",
        "training_panel.stop_button.click",
        "Ctrl+.",
        "Stop",
        follows="training_panel.stop_button",
    ),
    ActionSpec(
        "evaluateAction",
        "&Evaluate on the test set",
        "training",
        "evaluation.evaluate_button.click",
        "Ctrl+E",
        "Evaluate on the test set",
        follows="evaluation.evaluate_button",
    ),
    ActionSpec(
        "lowPriorityAction",
        "&Lower priority (for the runs that start next)",
        "training",
        setting="low_priority",
        separated=True,
        tip="Train below the window's priority, so other programs and the window come first: a steadier "
        "window, training about 7 % slower",
    ),
    ActionSpec("tensorboardAction", "&TensorBoard logs...", "training", "session.choose_tensorboard_dir"),
    ActionSpec(
        "shortcutsAction",
        "&Keyboard shortcuts",
        "help",
        "help.show_shortcuts",
        QKeySequence.StandardKey.HelpContents,
        "These shortcuts",
    ),
    ActionSpec("documentationAction", "&Documentation", "help", "help.show_manual"),
    ActionSpec("aboutAction", "&About Digit Studio", "help", "help.show_about", separated=True),
)


def build(window: QMainWindow, settings: AppSettings) -> tuple[dict[str, QAction], dict[str, QMenu]]:
    """The window's menus and actions from :data:`ACTIONS`, by id; the menus by key, and "recent"."""
    menus = {key: window.menuBar().addMenu(title) for key, title in MENUS.items()}
    for key, menu in menus.items():
        menu.setObjectName(f"{key}Menu")
    actions: dict[str, QAction] = {}
    for spec in ACTIONS:
        action = QAction(spec.text, window, objectName=spec.id)
        if spec.shortcut is not None:
            action.setShortcut(QKeySequence(spec.shortcut))
        if spec.tip:
            action.setToolTip(spec.tip)
        if spec.setting is not None:
            action.setCheckable(True)
            action.setChecked(getattr(settings, spec.setting))
            action.toggled.connect(partial(setattr, settings, spec.setting))
        else:
            action.triggered.connect(attrgetter(spec.call)(window))
        if spec.follows is not None:
            EnabledMirror(action, attrgetter(spec.follows)(window))
        menu = menus[spec.menu]
        if spec.separated:
            menu.addSeparator()
        menu.addAction(action)
        actions[spec.id] = action
        if spec.id == RECENT_MENU_AFTER:
            menus["recent"] = menu.addMenu("Open &recent")
            menus["recent"].setObjectName("recentMenu")
    return actions, menus


def shortcut_rows(more: tuple[tuple[Key, str], ...] = ()) -> list[tuple[str, str]]:
    """The keyboard help: each action with a shortcut, then ``more``, the keys in this platform's words."""
    keys = [(spec.shortcut, spec.help) for spec in ACTIONS if spec.shortcut is not None] + list(more)
    return [(QKeySequence(key).toString(QKeySequence.SequenceFormat.NativeText), what) for key, what in keys]


class EnabledMirror(QObject):
    """Keeps an action enabled exactly when a widget is: Qt has no signal for a widget's enabled state,
    but sends the widget an EnabledChange event, which this filter watches."""

    def __init__(self, action: QAction, widget: QWidget) -> None:
        super().__init__(action)
        self.action = action
        action.setEnabled(widget.isEnabled())
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.EnabledChange:
            self.action.setEnabled(watched.isEnabled())
        return False
