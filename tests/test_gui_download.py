"""Downloading a known data set from the GUI, against a local HTTP server: progress, cancel, offline."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from engine import data
from engine.download import RemoteFile


@pytest.fixture
def mnist_mirror(http_server, tiny_data: Path, monkeypatch: pytest.MonkeyPatch):
    """Serve the tiny data set as 'MNIST' from 127.0.0.1, with its real checksums."""
    files = []
    for path in sorted(tiny_data.iterdir()):
        http_server.files[path.name] = path.read_bytes()
        files.append(RemoteFile(path.name, hashlib.md5(path.read_bytes()).hexdigest()))
    spec = replace(data.DATASETS["mnist"], mirrors=(http_server.url + "mnist/",), files=tuple(files))
    monkeypatch.setitem(data.DATASETS, "mnist", spec)
    return spec


def test_missing_data_set_is_downloaded_with_progress_then_trained(window, qtbot, mnist_mirror, monkeypatch):
    monkeypatch.delenv("DIGIT_STUDIO_DATA")
    progress = []
    window.download_progress.connect(lambda done, total: progress.append((done, total)))
    window.training_panel.model_combo.setCurrentIndex(window.training_panel.model_combo.findData("lenet"))
    window.training_panel.epochs_spin.setValue(1)
    with qtbot.waitSignal(window.training_finished, timeout=60000) as finished:
        qtbot.mouseClick(window.training_panel.train_button, Qt.MouseButton.LeftButton)
    assert finished.args[0] is not None and finished.args[0].epochs_done == 1
    assert progress and progress[-1][0] == progress[-1][1] > 0
    assert all((data.cache_dir() / "mnist" / f.name).exists() for f in mnist_mirror.files)
    qtbot.waitUntil(lambda: not window.session.running, timeout=5000)


def test_cancel_stops_the_download_and_unlocks_the_panel(window, qtbot, http_server, mnist_mirror, monkeypatch):
    monkeypatch.delenv("DIGIT_STUDIO_DATA")
    http_server.delay = 0.5  # the first file's body arrives only after the cancel
    qtbot.mouseClick(window.training_panel.train_button, Qt.MouseButton.LeftButton)
    assert window.training_panel.cancel_download_button.isVisible()
    qtbot.mouseClick(window.training_panel.cancel_download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.loader.loading, timeout=10000)
    assert window.training_panel.train_button.isEnabled() and not window.session.running
    assert window.dialogs.errors == [] and "cancelled" in window.status_label.text().lower()
    assert "loading data" not in window.training_panel.progress.format()  # no status left stuck
    cache = data.cache_dir() / "mnist"
    assert not any((cache / f.name).exists() for f in mnist_mirror.files)


def test_offline_the_full_set_falls_back_to_the_built_in_sample(window, qtbot, monkeypatch):
    """A first Train with no network: the app says so, offers a folder, and trains on the sample."""
    monkeypatch.delenv("DIGIT_STUDIO_DATA")
    spec = replace(data.DATASETS["mnist"], mirrors=("http://127.0.0.1:9/",))
    monkeypatch.setitem(data.DATASETS, "mnist", spec)
    window.training_panel.model_combo.setCurrentIndex(window.training_panel.model_combo.findData("lenet"))
    qtbot.mouseClick(window.training_panel.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(window.dialogs.informed), timeout=30000)
    assert (
        "no network connection" in window.dialogs.informed[-1]
        and str(data.cache_dir() / "mnist") in window.dialogs.informed[-1]
    )
    assert "MNIST sample" in window.dialogs.informed[-1] and "Open folder" in window.dialogs.informed[-1]
    assert window.training_panel.dataset_choice() == ("mnist-sample", None)
    with qtbot.waitSignal(window.training_steps, timeout=30000):
        pass
    window.session.stop(wait=True)
    assert (
        not window.dialogs.errors
        and window.loader.chosen().name == "mnist-sample"
        and len(window.loader.chosen().train) == 10_000
    )


def test_the_command_line_falls_back_to_the_sample_offline_with_a_note(monkeypatch, capsys):
    import argparse

    from engine.cli import _load_data

    monkeypatch.setitem(data.DATASETS, "mnist", replace(data.DATASETS["mnist"], mirrors=("http://127.0.0.1:9/",)))
    dataset = _load_data(argparse.Namespace(data=None, dataset=None))
    assert dataset.name == "mnist-sample" and len(dataset.train) == 10_000
    note = capsys.readouterr().err.strip().splitlines()
    assert len(note) == 1 and "note:" in note[0] and "no network connection" in note[0] and "MNIST sample" in note[0]


def test_data_set_line_says_before_training_where_the_data_will_come_from(window, monkeypatch, tiny_data: Path):
    panel = window.training_panel
    status = panel.dataset_status
    assert status.text() == f"Found in {tiny_data}\nloaded when training starts"
    monkeypatch.delenv("DIGIT_STUDIO_DATA")
    panel.dataset_combo.setCurrentIndex(panel.dataset_combo.findData("fashion-mnist"))
    assert status.text() == (
        f"Not on this computer yet: downloaded into {data.cache_dir() / 'fashion-mnist'} when training starts"
    )
    panel.add_folder(str(tiny_data))
    assert status.text() == f"Loaded from {tiny_data} when training starts"
    assert window.loader.datasets == {}  # describing a choice loads nothing


def test_a_first_launch_chooses_the_built_in_sample(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from gui.main_window import MainWindow

    win = MainWindow(settings=QSettings(str(tmp_path / "fresh.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    assert win.training_panel.dataset_choice() == ("mnist-sample", None)
    assert "no download needed" in win.training_panel.dataset_status.text()
