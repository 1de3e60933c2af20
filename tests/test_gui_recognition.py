"""The recognition side: drawing with real mouse events, live prediction, images, model switching."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from engine.inference import BUNDLED_MODEL
from engine.pendigits import PENDIGITS
from tests.drawn_digits import SHAPES, render
from tests.gui_helpers import drag, open_checkpoint

pytestmark = pytest.mark.skipif(not BUNDLED_MODEL.exists(), reason="bundled model not built")

ONE = [(0.5, 0.15 + 0.07 * i) for i in range(11)]
ZERO = [(0.5 + 0.22 * math.sin(t / 24 * 2 * math.pi), 0.5 - 0.33 * math.cos(t / 24 * 2 * math.pi)) for t in range(25)]


@pytest.fixture
def panel(window):
    window.resize(1400, 900)
    return window.recognition


def test_bundled_model_answers_at_start(panel) -> None:
    assert panel.predictor is not None and panel.predictor.source == "bundled default model"
    assert "bundled" in panel.source_label.text()


def test_drawing_a_one_and_a_zero(panel, qtbot) -> None:
    drag(panel.canvas, ONE)
    prediction = panel.last_prediction
    assert prediction.label == 1, prediction.probabilities
    assert panel.prediction_label.text() == "1"
    assert float(panel.bars.values.sum()) == pytest.approx(1.0, abs=1e-5)
    assert panel.model_input_view.pixmap() is not None and not panel.model_input_view.pixmap().isNull()
    panel.canvas.clear()
    drag(panel.canvas, ZERO)
    assert panel.last_prediction.label == 0, panel.last_prediction.probabilities


def test_prediction_updates_during_a_stroke(panel, qtbot) -> None:
    from PySide6.QtCore import QEvent, QPoint, QPointF
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    predictions = []
    panel.prediction_made.connect(predictions.append)
    canvas = panel.canvas
    side = min(canvas.width(), canvas.height())
    ox, oy = (canvas.width() - side) // 2, (canvas.height() - side) // 2
    QTest.mousePress(
        canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(ox + side // 2, oy + side // 6)
    )
    for i in range(1, 12):
        point = QPointF(ox + side / 2, oy + side / 6 + i * side / 16)
        QApplication.sendEvent(
            canvas,
            QMouseEvent(
                QEvent.Type.MouseMove,
                point,
                canvas.mapToGlobal(point),
                Qt.MouseButton.NoButton,
                Qt.MouseButton.LeftButton,
                Qt.KeyboardModifier.NoModifier,
            ),
        )
    qtbot.waitUntil(lambda: len(predictions) > 0, timeout=2000)  # before the button is released
    assert predictions[-1].label == 1
    QTest.mouseRelease(
        canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(ox + side // 2, oy + side * 5 // 6)
    )


def test_clear_empties_the_prediction(panel, qtbot) -> None:
    drag(panel.canvas, ONE)
    assert panel.latency_label.text().startswith("Answered in ")
    qtbot.mouseClick(panel.clear_button, Qt.MouseButton.LeftButton)
    assert panel.canvas.is_empty() and panel.last_prediction.label is None
    assert panel.prediction_label.text() == "–" and float(panel.bars.values.sum()) == 0
    assert panel.latency_label.text() == ""  # nothing was asked, so no answer time


def test_undo_goes_back_a_stroke_or_a_clear_and_escape_never_wipes(panel, qtbot) -> None:
    assert not panel.undo_button.isEnabled() and not panel.clear_button.isEnabled()  # nothing to undo or clear
    drag(panel.canvas, ONE)
    drag(panel.canvas, [(0.3, 0.3), (0.7, 0.3)])
    assert len(panel.canvas.strokes) == 2 and panel.undo_button.isEnabled() and panel.clear_button.isEnabled()
    qtbot.mouseClick(panel.undo_button, Qt.MouseButton.LeftButton)
    assert len(panel.canvas.strokes) == 1 and panel.last_prediction.label == 1
    panel.canvas.setFocus()
    QTest.keyClick(panel.canvas, Qt.Key.Key_Escape)  # closing a menu with Esc must not wipe the drawing
    assert len(panel.canvas.strokes) == 1
    qtbot.mouseClick(panel.clear_button, Qt.MouseButton.LeftButton)
    assert panel.canvas.is_empty() and not panel.clear_button.isEnabled() and panel.undo_button.isEnabled()
    QTest.keyClick(panel.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # Clear is undone
    assert len(panel.canvas.strokes) == 1 and panel.last_prediction.label == 1
    QTest.keyClick(panel.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert panel.canvas.is_empty() and panel.last_prediction.label is None and not panel.undo_button.isEnabled()


def test_an_opened_image_keeps_its_aspect_ratio_and_reads_as_predict_reads_it(panel, tmp_path) -> None:
    """A wide image was stretched to a square; the app and `predict` gave different answers."""
    from engine.images import load_image

    image = np.full((100, 400), 255, np.uint8)
    rr, cc = np.ogrid[:100, :400]
    image[((rr - 50) ** 2 + (cc - 200) ** 2 < 40**2) & ((rr - 50) ** 2 + (cc - 200) ** 2 > 30**2)] = 0  # a ring
    Image.fromarray(image).save(tmp_path / "wide.png")
    assert panel.open_image(str(tmp_path / "wide.png"))
    expected = panel.predictor.predict(load_image(tmp_path / "wide.png"))
    np.testing.assert_allclose(panel.last_prediction.probabilities, expected.probabilities, rtol=0, atol=1e-6)
    shown = panel.canvas.to_array()
    rows = np.flatnonzero((shown < 128).any(axis=1))
    cols = np.flatnonzero((shown < 128).any(axis=0))
    assert abs((rows[-1] - rows[0]) - (cols[-1] - cols[0])) <= 3  # the ring is round on the canvas too


def test_a_data_set_image_reads_as_the_evaluation_read_it(panel, tiny_dataset) -> None:
    import torch

    from engine.data import to_float

    image = tiny_dataset.test.images[7]
    panel.show_array(image.numpy())
    with torch.inference_mode():
        logits = panel.predictor.model(to_float(image[None], panel.predictor.normalization))
    expected = torch.softmax(logits, 1)[0].numpy()
    np.testing.assert_allclose(panel.last_prediction.probabilities, expected, rtol=0, atol=1e-6)


def test_an_unreadable_image_is_said_under_the_canvas(panel, tmp_path) -> None:
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert not panel.open_image(str(tmp_path / "bad.png"))
    assert panel.canvas_notice.isVisibleTo(panel) and "bad.png" in panel.canvas_notice.text()


def test_resizing_keeps_the_drawing(window, panel, qtbot) -> None:
    drag(panel.canvas, ZERO)
    before = panel.canvas.to_array()
    window.resize(1000, 700)
    qtbot.wait(50)
    assert np.array_equal(panel.canvas.to_array(), before)
    assert panel.last_prediction.label == 0


def test_pen_width_slider(panel) -> None:
    panel.pen_slider.setValue(4)
    drag(panel.canvas, ONE)
    thin = (panel.canvas.to_array() < 128).sum()
    panel.canvas.clear()
    panel.pen_slider.setValue(16)
    drag(panel.canvas, ONE)
    assert (panel.canvas.to_array() < 128).sum() > 2 * thin


def test_opening_an_image_file_predicts_it(panel, tmp_path) -> None:
    path = tmp_path / "seven.png"
    Image.fromarray(render(SHAPES[7][0])).save(path)
    assert panel.open_image(str(path))
    assert panel.last_prediction.label == 7
    assert not panel.canvas.is_empty()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"no")
    messages = []
    panel.message.connect(messages.append)
    assert not panel.open_image(str(broken)) and "broken.png" in messages[-1]


def test_an_image_dropped_on_the_canvas_is_classified_and_one_elsewhere_is_refused(window, panel, tmp_path) -> None:
    from tests.gui_helpers import drop_file

    path = tmp_path / "seven.png"
    Image.fromarray(render(SHAPES[7][0])).save(path)
    assert not drop_file(window, window.plots.loss_plot, path)  # images go to the canvas only
    assert panel.canvas.is_empty()
    assert drop_file(window, panel.canvas, path)
    assert panel.last_prediction.label == 7 and not panel.canvas.is_empty()


def test_saliency_overlay_colours_the_input_view(panel) -> None:
    drag(panel.canvas, ZERO)
    plain = panel.model_input_view.pixmap().toImage()
    panel.saliency_check.setChecked(True)
    overlay = panel.model_input_view.pixmap().toImage()
    assert plain != overlay


def test_model_in_use_switches_when_a_checkpoint_is_opened(qtbot, window, panel, tmp_path, tiny_dataset) -> None:
    from engine import checkpoint as ckpt
    from engine.config import TrainConfig
    from engine.training import Trainer

    trainer = Trainer(TrainConfig(model="lenet", epochs=1, batch_size=32, device="cpu"), tiny_dataset)
    trainer.run()
    path = ckpt.save(ckpt.trainer_payload(trainer), tmp_path / "mine.pt")
    assert open_checkpoint(qtbot, window, path)
    assert panel.predictor.source == "mine.pt" and "mine.pt" in panel.source_label.text()


def test_canvas_recognises_replayed_strokes_as_well_as_predict_on_images(panel) -> None:
    """Every hand-written test shape, replayed with the mouse, against the same shape given as an image."""
    canvas_right = image_right = 0
    for label, shapes in SHAPES.items():
        for shape in shapes:
            panel.canvas.clear()
            for stroke in shape:  # the unit box of render() at its default placement on a 280 canvas
                drag(panel.canvas, [((65 + 150 * x) / 280, (40 + 200 * y) / 280) for x, y in stroke])
            canvas_right += panel.last_prediction.label == label
            image_right += panel.predictor.predict(render(shape)).label == label
    assert canvas_right >= image_right >= 27


def _write(canvas, digits: list[int], width: float = 0.7) -> None:
    """Draw ``digits`` side by side on the wide canvas (x in canvas heights), one shape each, real strokes."""
    for k, digit in enumerate(digits):
        for stroke in SHAPES[digit][0]:
            drag(canvas, [(0.15 + k * (width + 0.2) + width * x, 0.15 + 0.7 * y) for x, y in stroke])


def test_a_number_on_the_wide_canvas_is_read_digit_by_digit(window, panel, qtbot) -> None:
    readings = []
    panel.reading_made.connect(readings.append)
    qtbot.mouseClick(panel.wide_check, Qt.MouseButton.LeftButton)
    assert panel.canvas.aspect == 3.0 and panel.canvas.to_array().shape == (280, 840)
    _write(panel.canvas, [3, 0, 7])
    assert readings[-1].text == "307" and panel.prediction_label.text() == "307"
    assert panel.digits_box.isVisible() and len(panel.digit_buttons) == 3
    assert [b.isChecked() for b in panel.digit_buttons] == [True, False, False]
    assert len(panel.canvas.boxes) == 3 and panel.canvas.selected_box == 0
    qtbot.mouseClick(panel.digit_buttons[2], Qt.MouseButton.LeftButton)  # the 7: its own details
    assert panel.last_prediction.label == 7 and int(panel.bars.values.argmax()) == 7
    assert panel.canvas.selected_box == 2 and panel.confidence_label.text().startswith("digit 3 of 3")
    assert panel.model_input_view.pixmap() is not None
    qtbot.mouseClick(panel.boxes_check, Qt.MouseButton.LeftButton)
    assert not panel.canvas.show_boxes

    panel.canvas.setFocus()
    QTest.keyClick(panel.canvas, Qt.Key.Key_1)  # "that's a 1": only the selected digit becomes a sample
    kept = window.my_digits.samples()["1"]
    assert len(kept) == 1
    drawing = np.asarray(Image.open(kept[0]))
    assert drawing.shape[1] < 400  # the 7's own ink, not the whole wide canvas
    window.save_settings()
    assert window.settings.wide_canvas

    panel.canvas.clear()
    _write(panel.canvas, [5])
    assert not panel.digit_buttons and panel.prediction_label.text() == "5"


@pytest.mark.skipif(not PENDIGITS.is_file(), reason="../shared/datasets/pendigits is not beside the project")
def test_other_writers_numbers_drawn_apart_on_the_wide_canvas_are_counted_by_their_strokes(panel, qtbot) -> None:
    """Pen digits of writers held out from training, one stroke each, drawn with the mouse on the wide canvas."""
    from engine.pendigits import read_pendigits, split

    _, held = split(read_pendigits(PENDIGITS))
    qtbot.mouseClick(panel.wide_check, Qt.MouseButton.LeftButton)
    rng = np.random.default_rng(7)
    counted = whole = 0
    for _ in range(12):
        panel.canvas.clear()
        chosen = rng.choice(len(held), int(rng.integers(2, 5)))
        size, x = rng.uniform(0.5, 0.75), 0.1
        for i in chosen:
            points = held.trajectories[i] / 100 * size
            drag(panel.canvas, [(x + px, (1 - size) / 2 + py) for px, py in points])
            x += float(np.ptp(points[:, 0])) + rng.uniform(0.12, 0.3) * size
        reading = panel.last_reading
        counted += len(reading.digits) == len(chosen)
        whole += reading.text == "".join(str(int(held.labels[i])) for i in chosen)
        assert [d.box[0] for d in reading.digits] == sorted(d.box[0] for d in reading.digits)
    assert counted == 12 and whole >= 8


def test_strokes_decide_which_ink_is_one_digit_on_the_wide_canvas(panel, qtbot) -> None:
    """A 1 whose ink touches the next digit's is still its own digit, and a 4 of two strokes one digit:
    the strokes say so."""
    qtbot.mouseClick(panel.wide_check, Qt.MouseButton.LeftButton)
    panel.canvas.clear()
    drag(panel.canvas, [(0.45, 0.15), (0.45, 0.85)])  # a 1
    zero = [(0.68 + 0.19 * math.sin(a / 10 * math.pi), 0.5 - 0.36 * math.cos(a / 10 * math.pi)) for a in range(21)]
    drag(panel.canvas, zero)  # a 0 whose left side touches the 1
    drag(panel.canvas, [(1.25, 0.15), (1.05, 0.6), (1.4, 0.6)])  # a 4 of two strokes, apart
    drag(panel.canvas, [(1.3, 0.35), (1.3, 0.88)])
    assert panel.last_reading.text == "104"
    assert panel.canvas.to_array()[140, round(0.45 * 280) + 8 : round(0.49 * 280)].min() < 128  # the inks touch
