"""Hostile files in the app: checkpoints open on a worker and bad ones keep the model on hand; bad images
are reported at the canvas; no save or export is written over a file the app reads."""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import torch

from engine import checkpoint as ckpt
from engine.data import load_folder, split_files
from engine.inference import BUNDLED_MODEL
from gui.loss_plot import MAX_LOADED_POINTS
from tests.gui_helpers import open_checkpoint
from tests.test_images import _png


def _bundled_with(change) -> bytes:
    payload = torch.load(BUNDLED_MODEL, weights_only=True)
    change(payload)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def test_a_checkpoint_opens_on_a_worker_while_the_window_stays_live(qtbot, window, tmp_path: Path) -> None:
    steps = list(range(1, 250_001))
    path = tmp_path / "long.pt"
    path.write_bytes(
        _bundled_with(
            lambda p: p.__setitem__("history", {**p["history"], "steps": steps, "losses": [1.0 / s for s in steps]})
        )
    )
    with qtbot.waitSignal(window.checkpoint_opened, timeout=60000) as opened:
        assert window.document.open(path)
        assert window.document.opening.running  # read and checked off the GUI thread
    assert opened.args == [True]
    assert len(window.plots.steps.view) <= MAX_LOADED_POINTS  # a screenful, not a quarter of a million points
    assert window.plots.steps.view[-1] == 250_000


def test_a_checkpoint_that_would_crash_training_is_refused_and_the_model_kept(qtbot, window, tmp_path: Path) -> None:
    def short_moments(payload) -> None:
        state = payload["optimizer_state"] or {}
        if state:
            state["state"][0]["exp_avg"] = state["state"][0]["exp_avg"].flatten()[:3]
        else:  # the bundled model ships without optimiser state: give it one that does not fit
            payload["optimizer_state"] = {
                "state": {0: {"exp_avg": torch.zeros(3), "step": torch.tensor(1.0)}},
                "param_groups": [{"lr": 0.1, "params": [0]}],
            }

    before = window.recognition.predictor
    path = tmp_path / "crafted.pt"
    path.write_bytes(_bundled_with(short_moments))
    assert not open_checkpoint(qtbot, window, path)
    assert "crafted.pt" in window.dialogs.errors[-1] and "\n" not in window.dialogs.errors[-1]
    assert window.recognition.predictor is before and window.document.model.checkpoint is None


def test_bad_images_are_reported_at_the_canvas(window, tmp_path: Path) -> None:
    messages: list[str] = []
    window.recognition.message.connect(messages.append)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png(80_000, 80_000))
    script = tmp_path / "script.png"
    script.write_text("%!PS-Adobe-3.0\n0 0 moveto 9 9 lineto stroke showpage\n")
    assert not window.recognition.open_image(str(bomb))
    assert not window.recognition.open_image(str(script))
    assert "megapixels" in messages[0] and "not an image in a format" in messages[1]


def test_no_save_or_export_replaces_a_file_the_app_reads(
    qtbot, window, tiny_data: Path, tmp_path: Path, monkeypatch
) -> None:
    from PySide6.QtWidgets import QFileDialog

    data = Path(shutil.copytree(tiny_data, tmp_path / "mnist"))
    window.loader.datasets[("mnist", str(data))] = load_folder(data)
    model = tmp_path / "model.pt"
    shutil.copy(BUNDLED_MODEL, model)
    assert open_checkpoint(qtbot, window, model)
    files = split_files(data)
    digests = {f: hashlib.sha256(f.read_bytes()).hexdigest() for f in [*files, model]}

    assert not window.document.save_to(files[0])
    assert "which this command reads" in window.dialogs.errors[-1]
    # a TorchScript export (.pt) named like the model's own file
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(model), "TorchScript (*.pt)"))
    window.exporter.model_dialog()
    assert not window.exporter.job.running and "model.pt" in window.dialogs.errors[-1]
    assert window.document.save_to(model)  # Save itself replaces the model's file, as it should
    assert {f: hashlib.sha256(f.read_bytes()).hexdigest() for f in files} == {f: digests[f] for f in files}
    assert ckpt.load(model).architecture == "digitnet"
