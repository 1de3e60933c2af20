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
def test_a_run_that_learned_nothing_replaces_the_model_only_if_asked(window, monkeypatch, use_it) -> None:
    before = window.recognition.predictor
    asked: list[str] = []
    monkeypatch.setattr(window, "confirm", lambda title, question: asked.append(question) or use_it)
    window._run["epochs"] = 15
    window._on_epoch_model(_at_chance())  # as the worker sends it at an epoch's end
    assert window.recognition.predictor is before and "no better than guessing" in window.status_label.text()
    window._on_training_done()  # the run has ended
    assert asked and "10.09%" in asked[0] and "did not learn" in asked[0]
    assert (window.recognition.predictor is not before) == use_it
    assert window.model.unsaved == use_it


def test_a_second_run_starts_at_once_with_the_data_set_already_loaded(window, qtbot) -> None:
    from tests.gui_helpers import train_one_epoch

    train_one_epoch(window, qtbot)
    qtbot.mouseClick(window.training_panel.train_button, Qt.MouseButton.LeftButton)
    assert window.is_training and not window.loader.loading  # no "loading data..." wait: the set is kept
    window.stop_training(wait=True)


def test_the_help_menu_has_the_shortcuts_and_the_manual(window, monkeypatch) -> None:
    from PySide6.QtGui import QDesktopServices
    from PySide6.QtWidgets import QMessageBox

    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "information", lambda parent, title, text: shown.append(text))
    window.findChild(type(window.open_action), "shortcutsAction").trigger()
    assert "Ctrl+Return" in shown[0] and "Ctrl+Z" in shown[0]
    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    window.findChild(type(window.open_action), "documentationAction").trigger()
    assert opened and opened[0].endswith("README.md")
