"""No model is ever lost: Quit and a new run ask about an unsaved model; the next launch offers back a
model that was never saved; File > Open recent lists the autosaved runs."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog

from engine.inference import BUNDLED_MODEL
from gui.settings import AppSettings
from tests.gui_helpers import ScriptedDialogs, open_checkpoint, train_one_epoch


def _train_one_epoch(window, qtbot) -> None:
    train_one_epoch(window, qtbot)
    assert window.document.model.unsaved and window.windowTitle().startswith("unsaved model")


@pytest.mark.parametrize("answer", ["cancel", "discard", "save"])
def test_quit_asks_about_an_unsaved_model(window, qtbot, tmp_path, monkeypatch, answer) -> None:
    _train_one_epoch(window, qtbot)
    window.dialogs.unsaved_answer = answer
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "kept.pt"), ""))
    closed = window.close()
    assert window.dialogs.questions and "has not been saved" in window.dialogs.questions[0]
    assert closed == (answer != "cancel")
    assert (tmp_path / "kept.pt").is_file() == (answer == "save")


def test_a_new_run_asks_about_the_unsaved_model_first(window, qtbot, monkeypatch) -> None:
    _train_one_epoch(window, qtbot)
    window.dialogs.unsaved_answer = "cancel"
    window.start_training()
    assert not window.session.running and not window.loader.loading and window.document.model.unsaved


def test_the_next_launch_offers_back_a_model_never_saved(qtbot, tmp_path, monkeypatch) -> None:
    from gui.main_window import MainWindow

    autosave = tmp_path / "lenet-mnist-20261202-101010.pt"
    shutil.copy(BUNDLED_MODEL, autosave)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    AppSettings(settings).unsaved_autosave = str(autosave)
    window = MainWindow(settings=settings, dialogs=ScriptedDialogs())
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.checkpoint_opened, timeout=15000) as opened:
        window.show()
    assert opened.args == [True] and str(autosave) in window.dialogs.questions[0]
    assert (
        window.document.model.unsaved
        and window.document.model.file is None
        and window.windowTitle().startswith("unsaved model")
    )
    assert window.recognition.predictor.source.startswith("restored run (digitnet")
    qtbot.waitUntil(lambda: not window.warm_up.running, timeout=30000)


def test_open_recent_lists_the_autosaved_runs(window, qtbot, monkeypatch, tmp_path) -> None:
    from gui.autosave import autosave_dir

    folder = autosave_dir()  # in the test's own data folder (conftest)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("lenet-mnist-1.pt", "digitnet-mnist-2.pt"):
        shutil.copy(BUNDLED_MODEL, folder / name)
    window.menus["recent"].aboutToShow.emit()
    menu = window.findChild(type(window.menus["recent"]), "autosaveMenu")
    entries = [a.text() for a in menu.actions()]
    assert len(entries) == 2 and all(".pt  (" in e for e in entries) and menu.isEnabled()
    with qtbot.waitSignal(window.checkpoint_opened, timeout=15000):
        menu.actions()[0].trigger()
    assert window.document.model.unsaved and window.document.model.file is None


def test_saving_clears_the_offer(window, qtbot, tmp_path) -> None:
    _train_one_epoch(window, qtbot)
    assert window.settings.unsaved_autosave == str(window.session.autosave_path)
    assert window.document.save_to(tmp_path / "mine.pt")
    assert window.settings.unsaved_autosave == "" and not window.document.model.unsaved
    assert open_checkpoint(qtbot, window, tmp_path / "mine.pt")
