"""The Evaluate view and the data set browser, on a model whose mistakes are known in advance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from torch import nn

from engine.evaluation import evaluate, read_csv
from engine.inference import Predictor
from tests.gui_helpers import open_checkpoint


class ScriptedModel(nn.Module):
    """Answers from a lookup table: each known image gets the label the test scripted for it."""

    def __init__(self, images: torch.Tensor, answers: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("keys", images.reshape(len(images), -1).float())
        self.answers = torch.as_tensor(answers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(len(x), -1)
        index = torch.cdist(flat, self.keys).argmin(1)
        return nn.functional.one_hot(self.answers[index], 10).float() * 20


@pytest.fixture
def scripted(tiny_dataset):
    labels = tiny_dataset.test.labels.numpy()
    answers = labels.copy()
    answers[labels == 3] = 5  # every 3 is read as a 5
    sevens = np.flatnonzero(labels == 7)[:2]
    answers[sevens] = 1  # two 7s are read as 1s
    norm = tiny_dataset.normalization
    keys = (tiny_dataset.test.images.float() / 255 - norm.mean) / norm.std
    model = ScriptedModel(keys, answers)
    expected = np.zeros((10, 10), dtype=np.int64)
    np.add.at(expected, (labels, answers), 1)
    return Predictor(model, norm, tuple(str(i) for i in range(10)), "scripted model"), expected, answers


def test_engine_evaluate_matches_the_script(scripted, tiny_dataset) -> None:
    predictor, expected, _ = scripted
    result = evaluate(predictor.model, tiny_dataset.test, predictor.normalization)
    assert np.array_equal(result.confusion_matrix, expected)


def test_confusion_matrix_shows_the_engine_counts_and_cells_fill_the_gallery(window, qtbot, scripted, tmp_path):
    predictor, expected, answers = scripted
    window.set_predictor(predictor)
    view = window.evaluation
    with qtbot.waitSignal(view.evaluated, timeout=30000) as done:
        qtbot.mouseClick(view.evaluate_button, Qt.MouseButton.LeftButton)
    result = done.args[0]
    assert np.array_equal(result.confusion_matrix, expected)
    shown = np.array([[int(view.matrix.item(r, c).text()) for c in range(10)] for r in range(10)])
    assert np.array_equal(shown, expected)
    # the worst cell (3 -> 5) is selected first
    labels = result.labels
    assert sorted(view.gallery_indices()) == sorted(np.flatnonzero((labels == 3) & (answers == 5)).tolist())
    # clicking the 7 -> 1 cell shows exactly those two images
    rect = view.matrix.visualItemRect(view.matrix.item(7, 1))
    qtbot.mouseClick(view.matrix.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert sorted(view.gallery_indices()) == sorted(np.flatnonzero((labels == 7) & (answers == 1)).tolist())
    assert view.gallery.count() == 2
    assert "Accuracy" in view.summary.text()
    # clicking an image sends it to the recognition panel
    item = view.gallery.item(0)
    qtbot.mouseClick(view.gallery.viewport(), Qt.MouseButton.LeftButton, pos=view.gallery.visualItemRect(item).center())
    assert not window.recognition.canvas.is_empty() and window.recognition.last_prediction is not None


def test_all_mistakes_fill_the_gallery_the_most_confident_first(window, qtbot, scripted) -> None:
    predictor, _, answers = scripted
    window.set_predictor(predictor)
    view = window.evaluation
    assert not view.all_mistakes_button.isEnabled()  # nothing evaluated yet
    with qtbot.waitSignal(view.evaluated, timeout=30000) as done:
        view.evaluate()
    result = done.args[0]
    qtbot.mouseClick(view.all_mistakes_button, Qt.MouseButton.LeftButton)
    wrong = np.flatnonzero(result.labels != answers)
    assert sorted(view.gallery_indices()) == sorted(wrong.tolist())
    confidence = [result.probabilities[i, answers[i]] for i in view.gallery_indices()]
    assert confidence == sorted(confidence, reverse=True)
    assert view.gallery_label.text().startswith(f"All {len(wrong)} mistakes, the most confident first")
    seven = next(i for i in range(view.gallery.count()) if result.labels[view.gallery_indices()[i]] == 7)
    assert "7→1" in view.gallery.item(seven).text()  # each image says which mistake it is
    assert not view.matrix.selectedItems()


def test_the_matrix_and_the_gallery_work_from_the_keyboard(window, qtbot, scripted) -> None:
    predictor, _, answers = scripted
    window.set_predictor(predictor)
    view = window.evaluation
    with qtbot.waitSignal(view.evaluated, timeout=30000) as done:
        view.evaluate()
    labels = done.args[0].labels
    view.matrix.setFocus()
    view.matrix.setCurrentCell(7, 0)
    QTest.keyClick(view.matrix, Qt.Key.Key_Right)  # to the 7 -> 1 cell
    QTest.keyClick(view.matrix, Qt.Key.Key_Return)
    assert sorted(view.gallery_indices()) == sorted(np.flatnonzero((labels == 7) & (answers == 1)).tolist())
    window.recognition.canvas.clear()
    view.gallery.setFocus()
    view.gallery.setCurrentRow(1)
    QTest.keyClick(view.gallery, Qt.Key.Key_Return)
    assert not window.recognition.canvas.is_empty()


def test_csv_export_round_trips(window, qtbot, scripted, tmp_path) -> None:
    predictor, expected, _ = scripted
    window.set_predictor(predictor)
    view = window.evaluation
    with qtbot.waitSignal(view.evaluated, timeout=30000) as done:
        view.evaluate()
    path = view.export_csv(tmp_path / "eval.csv")
    names, accuracy, matrix = read_csv(path)
    assert names == [str(i) for i in range(10)]
    assert np.array_equal(matrix, expected)
    np.testing.assert_allclose(accuracy, done.args[0].per_class_accuracy, atol=1e-6)
    pngs = view.export_png(tmp_path / "eval.png")
    assert pngs == [tmp_path / "eval.png"] and pngs[0].stat().st_size > 10_000
    from PySide6.QtGui import QImage

    report = QImage(str(pngs[0]))
    assert report.width() > view.matrix.width() and report.height() > view.matrix.height()


def test_exports_remember_their_folder_and_a_failing_one_says_why_and_keeps_the_old_file(
    window, qtbot, scripted, tmp_path, monkeypatch
) -> None:
    from PySide6.QtWidgets import QFileDialog

    window.set_predictor(scripted[0])
    view = window.evaluation
    with qtbot.waitSignal(view.evaluated, timeout=30000):
        view.evaluate()
    starts: list[str] = []
    answer = {"path": str(tmp_path / "out" / "eval.csv")}

    def save_dialog(parent, caption, start, filters):
        starts.append(start)
        return answer["path"], filters

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_dialog)
    view.export_csv_dialog()  # the folder does not exist
    assert window.dialogs.errors and str(tmp_path / "out" / "eval.csv") in window.dialogs.errors[-1]
    assert "does not exist" in window.dialogs.errors[-1]

    (tmp_path / "out").mkdir()
    view.export_csv_dialog()
    assert read_csv(tmp_path / "out" / "eval.csv")[0] == [str(i) for i in range(10)]
    answer["path"] = str(tmp_path / "out" / "eval.png")
    view.export_png_dialog()
    assert starts[-1] == str(tmp_path / "out" / "evaluation.png")  # where the last export went
    assert (tmp_path / "out" / "eval.png").stat().st_size > 10_000  # the one file asked for: a report

    before = (tmp_path / "out" / "eval.csv").read_bytes()
    answer["path"] = str(tmp_path / "out" / "eval.csv")
    monkeypatch.setattr("engine.evaluation.csv.writer", lambda handle: 1 / 0 if handle else None)
    with pytest.raises(ZeroDivisionError):
        view.export_csv(tmp_path / "out" / "eval.csv")
    assert (tmp_path / "out" / "eval.csv").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["eval.csv", "eval.png"]


def test_dataset_browser_pages_and_filters(window, qtbot, tiny_dataset) -> None:
    browser = window.browser
    assert not browser.prev_button.isEnabled() and not browser.next_button.isEnabled()  # nothing to page yet
    with qtbot.waitSignal(window.dataset_loaded, timeout=30000):
        qtbot.mouseClick(browser.load_button, Qt.MouseButton.LeftButton)
    assert browser.grid.count() == 120 and browser.pages == 3
    qtbot.mouseClick(browser.next_button, Qt.MouseButton.LeftButton)
    assert browser.page == 1
    browser.label_combo.setCurrentIndex(browser.label_combo.findData(4))
    assert set(browser.shown_labels()) == {4}
    assert browser.grid.count() == int((tiny_dataset.train.labels == 4).sum())
    window.recognition.canvas.clear()
    browser.grid.setFocus()
    browser.grid.setCurrentRow(0)
    QTest.keyClick(browser.grid, Qt.Key.Key_Return)  # Enter sends the current image to the canvas
    assert not window.recognition.canvas.is_empty()
    browser.split_combo.setCurrentIndex(browser.split_combo.findData("test"))
    assert browser.grid.count() == int((tiny_dataset.test.labels == 4).sum())


def test_continuing_a_checkpoint_brings_its_data_set_and_a_mismatch_is_refused(
    window, qtbot, tmp_path, monkeypatch
) -> None:
    """Opening a Fashion-MNIST checkpoint changes no training setting; ticking Continue chooses Fashion-MNIST;
    evaluating or continuing it on MNIST digits is refused with a message instead of meaningless numbers."""
    from engine import checkpoint as ckpt
    from engine.config import TrainConfig
    from engine.data import load_folder
    from engine.training import Trainer
    from tests.helpers import write_dataset

    data = tmp_path / "data"
    write_dataset(data / "mnist")
    trainer = Trainer(
        TrainConfig(model="lenet", epochs=1, batch_size=64, device="cpu"),
        load_folder(write_dataset(data / "fashion-mnist", seed=3)),
    )
    trainer.run()
    path = ckpt.save(ckpt.trainer_payload(trainer), tmp_path / "clothes.pt")
    monkeypatch.setenv("DIGIT_STUDIO_DATA", str(data))
    panel = window.training_panel
    assert panel.dataset_choice() == ("mnist", None)

    epochs = panel.epochs_spin.value()
    assert open_checkpoint(qtbot, window, path)
    assert panel.dataset_choice() == ("mnist", None) and panel.epochs_spin.value() == epochs
    panel.resume_check.setChecked(True)
    assert panel.dataset_choice() == ("fashion-mnist", None)
    assert "Data set switched to Fashion-MNIST" in window.status_label.text()
    panel.resume_check.setChecked(False)

    panel.select_dataset("mnist")
    view = window.evaluation
    qtbot.mouseClick(view.evaluate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(window.dialogs.errors), timeout=30000)
    assert "recognises the Fashion-MNIST (clothing) classes" in window.dialogs.errors[-1]
    assert not view.job.running and view.evaluate_button.isEnabled() and view.result is None

    panel.resume_check.setChecked(True)
    panel.select_dataset("mnist")  # continuing, on digits after all
    with qtbot.waitSignal(window.training_finished, timeout=30000) as finished:
        qtbot.mouseClick(panel.train_button, Qt.MouseButton.LeftButton)
    assert finished.args[0] is None and "choose the data set the model was trained on" in window.dialogs.errors[-1]
    qtbot.waitUntil(lambda: not window.session.running, timeout=5000)
    assert window.recognition.predictor.source == "clothes.pt"  # the opened model stays in use


def test_continuing_a_checkpoint_brings_the_folder_its_data_came_from(qtbot, window, tmp_path, tiny_data) -> None:
    """Trained on a folder of its own (not where the data set's name leads): continuing it chooses that
    folder; once the folder is gone, the data set of its name."""
    import shutil

    from engine import checkpoint as ckpt
    from engine.config import TrainConfig
    from engine.data import load_folder
    from engine.training import Trainer

    folder = tmp_path / "my-digits"
    shutil.copytree(tiny_data, folder)
    trainer = Trainer(TrainConfig(model="lenet", epochs=1, batch_size=64, device="cpu"), load_folder(folder))
    trainer.run()
    path = ckpt.save(ckpt.trainer_payload(trainer), tmp_path / "mine.pt")
    panel = window.training_panel
    assert panel.dataset_choice() == ("mnist", None)

    assert open_checkpoint(qtbot, window, path)
    assert panel.dataset_choice() == ("mnist", None)
    panel.resume_check.setChecked(True)
    assert panel.dataset_choice()[1] == str(folder.resolve())
    assert f"Data set switched to the folder {folder.resolve()}" in window.status_label.text()

    panel.resume_check.setChecked(False)
    panel.select_dataset("mnist")
    shutil.rmtree(folder)
    assert open_checkpoint(qtbot, window, path)
    panel.resume_check.setChecked(True)
    assert panel.dataset_choice() == ("mnist", None) and "switched" not in window.status_label.text()


def test_figures_of_a_model_that_changed_since_are_marked_out_of_date(window, qtbot, scripted) -> None:
    from engine.inference import BUNDLED_MODEL

    window.set_predictor(scripted[0])
    view = window.evaluation
    with qtbot.waitSignal(view.evaluated, timeout=30000):
        view.evaluate()
    assert not view.stale and view.export_csv_button.isEnabled()
    assert open_checkpoint(qtbot, window, BUNDLED_MODEL)  # the model on hand changes
    assert view.stale and "Out of date" in view.summary.text()
    assert not view.export_csv_button.isEnabled() and not view.export_png_button.isEnabled()
    with qtbot.waitSignal(view.evaluated, timeout=30000):
        view.evaluate()
    assert not view.stale and "digitnet-mnist.pt" in view.summary.text() and view.export_csv_button.isEnabled()
