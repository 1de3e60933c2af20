"""Teaching in the app: say what a drawing is (That's a ..., or keys 0-9), see it in My digits, Teach, and
the taught model answers on the canvas, unsaved; an unsure answer says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from engine.inference import UNSURE_BELOW, Prediction
from engine.preprocess import preprocess
from gui.prediction_panel import confidence_text
from tests.drawn_digits import SHAPES, render
from tests.gui_helpers import drag


def _draw(canvas, digit: int, shape: int = 0) -> None:
    canvas.clear()
    for stroke in SHAPES[digit][shape % len(SHAPES[digit])]:
        drag(canvas, [(0.2 + 0.6 * x, 0.12 + 0.76 * y) for x, y in stroke])


def test_an_unsure_answer_says_so() -> None:
    names = tuple(map(str, range(10)))
    prepared = preprocess(render(SHAPES[3][0]))
    sure = np.zeros(10, np.float32)
    sure[3] = 0.97
    assert confidence_text(Prediction(3, sure, prepared), names) == "97.0% confident"
    unsure = np.zeros(10, np.float32)
    unsure[[4, 9]] = [UNSURE_BELOW - 0.1, 0.4]
    assert confidence_text(Prediction(4, unsure, prepared), names) == "not sure: 4 or 9?"
    dash = preprocess(render([[(0.1, 0.5), (0.9, 0.52)]]))  # confidently read as a digit, but no digit is that flat
    assert confidence_text(Prediction(1, sure, dash), names) == "not sure: unlike any digit (wider than any digit)"


@pytest.mark.slow
def test_correct_keep_and_teach(window, qtbot) -> None:
    panel, mine = window.recognition, window.my_digits
    for digit in range(10):
        for shape in range(2):
            _draw(panel.canvas, digit, shape)
            panel.canvas.setFocus()
            QTest.keyClick(panel.canvas, getattr(Qt.Key, f"Key_{digit}"))  # keys 0-9 while the canvas has focus
    qtbot.mouseClick(panel.label_buttons[7], Qt.MouseButton.LeftButton)  # or the "That's a" buttons
    samples = mine.samples()
    assert [len(samples[str(d)]) for d in range(10)] == [2] * 7 + [3] + [2] * 2
    prepared = mine.folder / ".prepared" / "7"
    assert len(list(prepared.glob("*.png"))) == 3  # each drawing's 28x28 form is kept beside it
    assert "21 samples" in mine.counts_label.text() and mine.gallery.count() == 21
    mine.gallery.item(0).setSelected(True)
    qtbot.mouseClick(mine.delete_button, Qt.MouseButton.LeftButton)
    assert mine.gallery.count() == 20

    before = panel.predictor
    qtbot.mouseClick(mine.teach_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.predictor is not before, timeout=120000)
    assert panel.predictor.source == "taught model (20 samples)" and window.document.model.unsaved
    assert window.windowTitle().startswith("unsaved model") and window.document.model.checkpoint.taught["samples"] == 20
    assert "Taught 20 samples" in mine.result_label.text() and "Keep 4 or more" in mine.result_label.text()
    # autosaved like a run's epoch: a crash now loses nothing, the next launch offers it back
    qtbot.waitUntil(lambda: bool(window.settings.unsaved_autosave), timeout=10000)
    autosave = Path(window.settings.unsaved_autosave)
    assert autosave.is_file() and autosave.name.startswith("taught-")
    from engine import checkpoint as ckpt

    assert ckpt.load(autosave).taught["samples"] == 20
