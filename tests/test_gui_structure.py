"""The window stays a window: controllers own the work, settings keys live in one module, and tests drive
the window through its public objects (the checks of the main-window issue, kept)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _class(path: Path, name: str) -> ast.ClassDef:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name)


def test_the_main_window_is_small() -> None:
    path = ROOT / "gui" / "main_window.py"
    methods = [n for n in _class(path, "MainWindow").body if isinstance(n, ast.FunctionDef)]
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 400 and len(methods) <= 30


def test_settings_are_read_and_written_only_by_the_settings_module() -> None:
    reads_or_writes = re.compile(r"\.(setValue|value)\(\s*[\"']|QSettings\(\s*[\"']")
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "gui").glob("*.py")
        if path.name != "settings.py" and reads_or_writes.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_no_test_patches_or_calls_the_windows_private_methods() -> None:
    private = re.compile(r"\b(window|win|again)\._[a-z]\w*|setattr\((window|win|again),")
    offenders = [
        f"{path.name}:{number}"
        for path in (ROOT / "tests").glob("test_*.py")
        if path.name != Path(__file__).name
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if private.search(line)
    ]
    assert offenders == []


def test_every_action_is_declared_once_and_shown_in_a_menu(window) -> None:
    from gui.actions import ACTIONS

    ids = [spec.id for spec in ACTIONS]
    assert len(ids) == len(set(ids))
    in_menus = {action.objectName() for menu in window.menus.values() for action in menu.actions()}
    assert set(ids) <= in_menus
