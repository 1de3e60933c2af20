"""What the user types is never silently changed, and a run that learned nothing does not replace the
model on hand without asking."""

from __future__ import annotations

import io

import pytest
import torch
from PySide6.QtCore import Qt

from engine import checkpoint as ckpt
from engine.inference import BUNDLED_MODEL


def test_a_learning_rate_out_of_range_is_said_not_silently_clamped(window, qtbot) -> None:
    spin = window.training_panel.lr_spin
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin, "50")
    assert spin.text() == "50"  # the keystroke is kept, not dropped (which read as 5)
    qtbot.keyClick(spin, Qt.Key.Key_Return)
    note = window.training_panel.settings_note
    assert spin.value() == spin.maximum() and note.isVisible()
    assert "Learning rate: 50 is out of range" in note.text() and "set to 10" in note.text()
    spin.selectAll()
    qtbot.keyClicks(spin, "0.01")
    assert not note.isVisible()


def _at_chance() -> ckpt.Checkpoint:
    payload = torch.load(BUNDLED_MODEL, weights_only=True)
    payload["history"]["epochs"][-1]["test_accuracy"] = 0.1009
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return ckpt.from_payload(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))


@pytest.mark.parametrize("use_it", [False, True])
def test_a_run_that_learned_nothing_replaces_the_model_only_if_asked(qapp, tmp_path, use_it) -> None:
    from PySide6.QtCore import QSettings

    from gui.datasets import DatasetLoader
    from gui.document import CheckpointDocument
    from gui.settings import AppSettings
    from gui.training_session import RunShape, TrainingSession
    from tests.gui_helpers import ScriptedDialogs

    dialogs = ScriptedDialogs()
    dialogs.confirm_answer = use_it
    settings = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    document = CheckpointDocument(settings, dialogs, inputs=list)
    document.load_bundled()
    before = document.model.predictor
    session = TrainingSession(document, DatasetLoader(), settings, dialogs, tmp_path / "runs")
    said: list[str] = []
    session.status.connect(said.append)
    session.shape = RunShape(steps_per_epoch=1, epochs=15, batch_size=1)
    session.take_epoch_model(_at_chance())  # as the worker sends it at an epoch's end
    assert document.model.predictor is before and "no better than guessing" in said[-1]
    session.run_done()  # the run has ended
    assert dialogs.questions and "10.09%" in dialogs.questions[0] and "did not learn" in dialogs.questions[0]
    assert (document.model.predictor is not before) == use_it
    assert document.model.unsaved == use_it


def test_a_second_run_starts_at_once_with_the_data_set_already_loaded(window, qtbot) -> None:
    from tests.gui_helpers import train_one_epoch

    train_one_epoch(window, qtbot)
    qtbot.mouseClick(window.training_panel.train_button, Qt.MouseButton.LeftButton)
    assert window.session.running and not window.loader.loading  # no "loading data..." wait: the set is kept
    window.session.stop(wait=True)


def test_the_help_menu_has_the_shortcuts_and_the_manual(window, qtbot) -> None:
    from PySide6.QtWidgets import QDialog, QTextBrowser

    window.actions["shortcutsAction"].trigger()
    assert "Ctrl+Return" in window.dialogs.shown[0] and "Ctrl+Z" in window.dialogs.shown[0]
    window.actions["documentationAction"].trigger()  # the README, in a window of the app
    manual = window.findChild(QDialog, "manualWindow")
    qtbot.waitExposed(manual)
    assert "Digit Studio" in manual.findChild(QTextBrowser, "manualText").toPlainText()
    manual.close()
