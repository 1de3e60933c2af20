"""The main window's training side, driven through its real widgets (pytest-qt, offscreen)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLabel, QProgressBar, QPushButton, QSpinBox

from engine import checkpoint as ckpt
from engine.devices import list_devices
from engine.events import StepEvent, epochs_text
from tests.gui_helpers import open_checkpoint
from tests.helpers import report_notice_before_training


def _widget(window, cls, name):
    widget = window.findChild(cls, name)
    assert widget is not None, name
    return widget


def _configure(window, epochs: int, batch: int = 32) -> None:
    model = _widget(window, QComboBox, "modelCombo")
    model.setCurrentIndex(model.findData("lenet"))
    _widget(window, QSpinBox, "epochsSpin").setValue(epochs)
    _widget(window, QSpinBox, "batchSizeSpin").setValue(batch)


def _collect_steps(window) -> list[StepEvent]:
    steps: list[StepEvent] = []
    window.training_steps.connect(steps.extend)
    return steps


def test_every_interactive_widget_has_its_object_name(window) -> None:
    for cls, name in [
        (QComboBox, "datasetCombo"),
        (QComboBox, "modelCombo"),
        (QSpinBox, "epochsSpin"),
        (QSpinBox, "batchSizeSpin"),
        (QComboBox, "deviceCombo"),
        (QPushButton, "trainButton"),
        (QPushButton, "pauseButton"),
        (QPushButton, "stopButton"),
        (QProgressBar, "trainingProgress"),
    ]:
        _widget(window, cls, name)
    assert window.findChild(object, "lossPlot") is not None and window.findChild(object, "accuracyPlot") is not None
    assert window.findChild(object, "learningRateSpin") is not None


def test_every_training_setting_explains_itself_in_a_tooltip(window) -> None:
    from PySide6.QtWidgets import QAbstractSpinBox, QCheckBox

    inputs = [w for cls in (QComboBox, QAbstractSpinBox, QCheckBox) for w in window.training_panel.findChildren(cls)]
    assert len(inputs) >= 12
    assert [w.objectName() for w in inputs if not w.toolTip()] == []


def test_device_combo_lists_exactly_what_the_engine_finds(window) -> None:
    combo = _widget(window, QComboBox, "deviceCombo")
    assert [combo.itemData(i) for i in range(combo.count())] == [d.name for d in list_devices()]


@pytest.mark.parametrize(
    ("saved", "chosen"), [(None, "cuda:0"), ("cpu", "cpu"), ("cuda:1", "cuda:1"), ("cuda:5", "cuda:0")]
)
def test_the_device_is_the_gpu_unless_another_was_chosen_before(qtbot, tmp_path, saved, chosen) -> None:
    """As the command line's auto; a remembered device that this computer still has wins."""
    from PySide6.QtCore import QSettings

    from engine.devices import DeviceInfo
    from gui.settings import AppSettings
    from gui.training_panel import TrainingPanel

    panel = TrainingPanel(
        (
            DeviceInfo("cpu", "CPU (16 cores)"),
            DeviceInfo("cuda:0", "NVIDIA H200 (140 GiB)"),
            DeviceInfo("cuda:1", "NVIDIA H200 (140 GiB)"),
        )
    )
    qtbot.addWidget(panel)
    settings = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    if saved is not None:
        settings.device = saved
    panel.restore_settings(settings)
    assert panel.device() == chosen


def test_train_through_the_buttons_and_plot_every_loss(window, qtbot) -> None:
    _configure(window, epochs=2)
    steps = _collect_steps(window)
    with qtbot.waitSignal(window.training_finished, timeout=60000) as finished:
        qtbot.mouseClick(_widget(window, QPushButton, "trainButton"), Qt.MouseButton.LeftButton)
    event = finished.args[0]
    assert event is not None and not event.stopped and event.epochs_done == 2
    window.plots.flush()
    xs, ys = window.plots.raw_curve.getData()
    assert list(window.plots.losses.view) == [s.loss for s in steps]
    assert list(xs) == [s.step for s in steps] and len(ys) == len(steps) == 4  # 20 steps, one loss per 5
    assert list(window.plots.accuracies) and len(window.plots.accuracies) == 2
    qtbot.waitUntil(lambda: not window.session.running, timeout=5000)
    assert _widget(window, QPushButton, "trainButton").isEnabled()
    qtbot.waitUntil(lambda: window.recognition.predictor.source == "training run (lenet, 2 epochs)", timeout=5000)
    assert Path(window.session.autosave_path).exists()


def test_a_run_keeps_the_autosave_folder_to_the_newest_files_and_the_recent_ones(window, qtbot) -> None:
    from gui.autosave import MAX_KEPT, autosave_dir
    from tests.helpers import write_autosaves

    folder = autosave_dir()
    folder.mkdir(parents=True)
    old = write_autosaves(folder, MAX_KEPT + 5)
    window.document.remember_recent(str(old[0]))  # on the Open recent list: kept however old
    _configure(window, epochs=1)
    with qtbot.waitSignal(window.training_finished, timeout=60000):
        qtbot.mouseClick(_widget(window, QPushButton, "trainButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.session.running, timeout=5000)
    left = set(folder.glob("*.pt"))
    assert Path(window.session.autosave_path) in left and old[0] in left
    assert left == {Path(window.session.autosave_path), old[0], *old[-(MAX_KEPT - 1) :]}


def test_a_training_notice_reaches_the_status_bar_and_stays_on_the_device_label(window, qtbot, monkeypatch) -> None:

    message = "CUDA graph capture failed, so training goes on without graphs: RuntimeError: boom"
    _configure(window, epochs=1)
    with pytest.MonkeyPatch.context() as patch:
        report_notice_before_training(patch, message)
        with qtbot.waitSignal(window.training_finished, timeout=60000):
            qtbot.mouseClick(_widget(window, QPushButton, "trainButton"), Qt.MouseButton.LeftButton)
        label = window.findChild(QLabel, "statusDevice")
        assert label.toolTip() == message and label.text().endswith("(see note)")
        qtbot.waitUntil(lambda: not window.session.running, timeout=5000)
    # the next run has no note: the label clears
    with qtbot.waitSignal(window.training_finished, timeout=60000):
        qtbot.mouseClick(_widget(window, QPushButton, "trainButton"), Qt.MouseButton.LeftButton)
    assert label.toolTip() == "" and not label.text().endswith("(see note)")
    qtbot.waitUntil(lambda: not window.session.running, timeout=5000)


def test_a_failing_autosave_is_noted_and_the_run_goes_on(window, qtbot, monkeypatch) -> None:
    from engine.errors import CheckpointError

    def full_disk(payload, path):
        raise CheckpointError(f"cannot save {path}: No space left on device")

    monkeypatch.setattr(ckpt, "save", full_disk)
    _configure(window, epochs=2)
    with qtbot.waitSignal(window.training_finished, timeout=60000) as finished:
        qtbot.mouseClick(_widget(window, QPushButton, "trainButton"), Qt.MouseButton.LeftButton)
    assert finished.args[0] is not None and finished.args[0].epochs_done == 2 and not window.dialogs.errors
    note = window.findChild(QLabel, "statusDevice").toolTip()
    assert note.startswith("Autosave failed, training goes on") and "No space left on device" in note
    qtbot.waitUntil(lambda: not window.session.running, timeout=5000)


def test_an_unusable_autosave_folder_is_noted_and_the_run_goes_on(window, qtbot, monkeypatch, tmp_path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker))
    _configure(window, epochs=1)
    with qtbot.waitSignal(window.training_finished, timeout=60000) as finished:
        qtbot.mouseClick(_widget(window, QPushButton, "trainButton"), Qt.MouseButton.LeftButton)
    assert finished.args[0] is not None and finished.args[0].epochs_done == 1 and not window.dialogs.errors
    assert window.session.autosave_path is None
    note = window.findChild(QLabel, "statusDevice").toolTip()
    assert note.startswith("No autosaves for this run: cannot create") and str(blocker) in note
    qtbot.waitUntil(lambda: not window.session.running, timeout=5000)


def _thread_niceness() -> dict[int, int]:
    """Nice value of every thread of this process, from /proc (Linux)."""
    values = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):  # a short-lived thread ended between listing and reading
            continue
        fields = stat.rsplit(")", 1)[1].split()
        values[int(task.name)] = int(fields[16])  # field 19 of stat; the split starts at field 3
    return values


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_training_runs_below_the_gui_priority_on_every_core_when_asked(window, qtbot) -> None:
    """With Training > Lower priority, the training thread and the OpenMP threads it starts yield to the GUI
    thread and other programs, on every core (gui.workers.lower_thread_priority)."""
    import os
    import threading

    from gui.workers import BACKGROUND_NICENESS

    window.actions["lowPriorityAction"].setChecked(True)
    _configure(window, epochs=200, batch=64)
    steps = _collect_steps(window)
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    qtbot.mouseClick(_widget(window, QPushButton, "trainButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(steps) > 2, timeout=30000)
    worker = window.session.job.worker
    niceness = _thread_niceness()
    window.session.stop(wait=True)
    assert worker.lowered_priority and worker.intra_op_threads == (os.cpu_count() or 2)
    assert niceness[worker.native_thread_id] == min(19, base + BACKGROUND_NICENESS)
    assert niceness[threading.get_native_id()] == base  # the GUI thread keeps its priority
    lowered = [tid for tid, value in niceness.items() if value == min(19, base + BACKGROUND_NICENESS)]
    assert len(lowered) >= worker.intra_op_threads  # the training thread and its OpenMP team


def test_step_losses_redraw_only_the_loss_curves(window, monkeypatch) -> None:
    """A redraw repaints on the GUI thread while training waits for the GIL: per-epoch curves are set
    only when an epoch has ended."""
    plots = window.plots
    plots.flush()
    calls = []
    for name in ("raw_curve", "smooth_curve", "test_loss_curve", "accuracy_curve"):
        curve = getattr(plots, name)
        monkeypatch.setattr(curve, "setData", lambda *args, name=name, **kwargs: calls.append(name))
    plots.add_losses([1, 2], [0.9, 0.8])
    plots._redraw()
    assert calls == ["raw_curve", "smooth_curve"]
    calls.clear()
    plots._redraw()  # nothing new: nothing set
    assert calls == []
    plots.add_epoch(1, 2, 0.5, 0.9)
    plots._redraw()
    assert calls == ["test_loss_curve", "accuracy_curve"]


def test_epoch_axis_ticks_only_whole_epochs(window) -> None:
    axis = window.plots.accuracy_plot.getAxis("bottom")
    for low, high in [(1, 3), (1, 2), (0.5, 40.5), (1, 250)]:
        ticks = [v for _, values in axis.tickValues(low, high, 500) for v in values]
        assert ticks and all(float(v).is_integer() and low <= v <= high for v in ticks), (low, high, ticks)


def test_empty_plots_have_a_frame_with_ticks_then_follow_their_data(window, qtbot) -> None:
    """pyqtgraph's empty range, 0-1, showed no ticks on the step and epoch axes and read as "0.8 %"."""
    from gui.loss_plot import EMPTY_EPOCHS, EMPTY_STEPS

    plots = window.plots
    loss_view, accuracy_view = plots.loss_plot.getViewBox(), plots.accuracy_plot.getViewBox()

    def framed_empty() -> bool:
        return loss_view.viewRange()[0] == [0, EMPTY_STEPS] and accuracy_view.viewRange() == [
            [1, EMPTY_EPOCHS],
            [0, 100],
        ]

    assert framed_empty()
    for plot, (low, high) in [(plots.loss_plot, (0, EMPTY_STEPS)), (plots.accuracy_plot, (1, EMPTY_EPOCHS))]:
        ticks = [v for _, values in plot.getAxis("bottom").tickValues(low, high, 500) for v in values]
        assert len(ticks) >= 3, ticks
    plots.add_losses(list(range(1, 301)), [1.0 / step for step in range(1, 301)])
    plots.add_epoch(1, 150, 0.20, 0.955)
    plots.add_epoch(2, 300, 0.10, 0.987)
    plots.flush()
    qtbot.waitUntil(lambda: 290 <= loss_view.viewRange()[0][1] < 350)  # padding (more in a narrower plot)
    qtbot.waitUntil(
        lambda: 90 < accuracy_view.viewRange()[1][0] < 95.5 and 98.7 < accuracy_view.viewRange()[1][1] < 100
    )
    assert 1.9 <= accuracy_view.viewRange()[0][1] < 2.5
    plots.clear()
    plots.flush()
    assert framed_empty()


def test_a_first_epoch_alone_stays_within_the_axes_bounds(window, qtbot) -> None:
    """A run's first test accuracy is a lone point; pyqtgraph framed it 47-147 %, from epoch -1."""
    plots = window.plots
    plots.add_losses([1, 2, 3], [2.0, 1.0, 0.5])
    plots.add_epoch(1, 3, 0.3, 0.9703)
    plots.flush()
    from gui.loss_plot import EMPTY_EPOCHS, EMPTY_STEPS

    accuracy_view, loss_view = plots.accuracy_plot.getViewBox(), plots.loss_plot.getViewBox()
    qtbot.waitUntil(lambda: accuracy_view.viewRange()[0][1] != EMPTY_EPOCHS)  # follows the data now
    qtbot.waitUntil(lambda: loss_view.viewRange()[0][1] != EMPTY_STEPS)
    (epoch_low, _), (low, high) = accuracy_view.viewRange()
    assert epoch_low >= 0 and 0 <= low < 97.03 < high <= 100
    assert loss_view.viewRange()[0][0] >= 0


@pytest.mark.parametrize("height", [260, 700])
def test_loss_axis_labels_never_overlap_and_show_each_decade(qtbot, height: int) -> None:
    """In a 1280x720 window pyqtgraph's labels 1, 0.9, 0.8 ... ran into each other on the log axis."""
    from PySide6.QtGui import QImage, QPainter

    from gui.loss_plot import TrainingPlots

    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.resize(500, height)
    plots.show()
    qtbot.waitExposed(plots)
    steps = list(range(1, 801))
    plots.add_losses(steps, [2.2 * (0.025 / 2.2) ** (step / 800) for step in steps])  # 2.2 down to 0.025
    plots.flush()
    axis = plots.loss_plot.getAxis("left")

    def labels_drawn() -> list:
        image = QImage(10, 10, QImage.Format.Format_ARGB32)
        painter = QPainter(image)
        try:
            _, _, texts = axis.generateDrawSpecs(painter)
        finally:
            painter.end()
        return sorted(((rect.top(), rect.bottom(), text) for rect, _, text in texts), key=lambda spec: spec[0])

    qtbot.wait(300)  # the redraw timer and the layout settle (more than one event-loop turn on a busy machine)
    labels = labels_drawn()
    shown = {text for _, _, text in labels}
    assert {"1", "0.1"} <= shown, shown
    for (_, bottom, text), (top, _, below) in zip(labels, labels[1:]):
        assert bottom <= top, (text, below)
    if height > 500:  # a tall plot labels the 2-9 multiples it has room for
        assert len(shown) >= 10, shown


def test_grid_lines_are_opaque_and_behind_the_curves(qtbot) -> None:
    """Translucent grid lines made each plot redraw about 3x slower (gui/loss_plot.GridAxis); mixed with
    the white background they keep their look, and the curves are drawn over them."""
    from PySide6.QtGui import QImage, QPainter

    from gui.loss_plot import TrainingPlots

    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.resize(500, 600)
    plots.show()
    qtbot.waitExposed(plots)
    plots.add_losses(list(range(1, 401)), [2.0 * 0.99**step for step in range(1, 401)])
    plots.add_epoch(1, 200, 0.3, 0.9)
    plots.add_epoch(2, 400, 0.2, 0.95)
    plots.flush()
    qtbot.wait(50)
    image = QImage(10, 10, QImage.Format.Format_ARGB32)
    for plot in (plots.loss_plot, plots.accuracy_plot):
        for name in ("left", "bottom"):
            axis = plot.getAxis(name)
            assert axis.grid, f"{plot.objectName()} {name}: no grid"
            painter = QPainter(image)
            try:
                _, ticks, _ = axis.generateDrawSpecs(painter)
            finally:
                painter.end()
            colours = {pen.color().getRgb() for pen, _, _ in ticks}
            assert colours and all(alpha == 255 for *_, alpha in colours), colours
            assert any(min(rgb[:3]) > 128 for rgb in colours), colours  # light grey grid lines, as before
            assert axis.zValue() < plot.getViewBox().zValue()


def test_pause_freezes_steps_and_resume_continues(window, qtbot) -> None:
    _configure(window, epochs=200, batch=8)
    steps = _collect_steps(window)
    qtbot.mouseClick(_widget(window, QPushButton, "trainButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(steps) > 3, timeout=30000)
    pause = _widget(window, QPushButton, "pauseButton")
    qtbot.mouseClick(pause, Qt.MouseButton.LeftButton)
    assert pause.text() == "Resume"
    qtbot.wait(400)  # let the step in flight land
    frozen = len(steps)
    qtbot.wait(600)
    assert len(steps) == frozen
    qtbot.mouseClick(pause, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(steps) > frozen, timeout=10000)
    with qtbot.waitSignal(window.training_finished, timeout=5000):
        qtbot.mouseClick(_widget(window, QPushButton, "stopButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.session.running, timeout=2000)  # its thread's end follows the signal


def test_stop_ends_within_a_second(window, qtbot) -> None:
    _configure(window, epochs=200, batch=8)
    steps = _collect_steps(window)
    qtbot.mouseClick(_widget(window, QPushButton, "trainButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(steps) > 2, timeout=30000)
    with qtbot.waitSignal(window.training_finished, timeout=1000) as finished:
        qtbot.mouseClick(_widget(window, QPushButton, "stopButton"), Qt.MouseButton.LeftButton)
    assert finished.args[0].stopped
    qtbot.waitUntil(lambda: not window.session.running, timeout=2000)
    done = finished.args[0].epochs_done  # the worker may be a few epochs in by the time Stop arrives
    # the model on hand is the last completed epoch's (or, before any, the one before the run)
    label = f"training run (lenet, {done} of {epochs_text(200)})" if done else "bundled default model"
    assert window.recognition.predictor.source == label


def test_a_run_locks_opening_checkpoints_and_data_folders_until_it_ends(window, qtbot, tmp_path, tiny_dataset):
    """A checkpoint opened mid-run replaced the live curves with its history and the ETA's batch size."""
    from engine.config import TrainConfig
    from engine.training import Trainer

    trainer = Trainer(TrainConfig(model="lenet", epochs=1, batch_size=64, device="cpu"), tiny_dataset)
    trainer.run()
    path = ckpt.save(ckpt.trainer_payload(trainer), tmp_path / "other.pt")
    window.document.remember_recent(str(path))
    locks = [window.actions["openCheckpointAction"], window.actions["openDataFolderAction"], window.menus["recent"]]
    assert all(item.isEnabled() for item in locks)
    _configure(window, epochs=200, batch=8)
    steps = _collect_steps(window)
    qtbot.mouseClick(_widget(window, QPushButton, "trainButton"), Qt.MouseButton.LeftButton)
    assert not any(item.isEnabled() for item in locks)  # from Train on, while the data loads too
    qtbot.waitUntil(lambda: len(steps) > 2, timeout=30000)
    assert not open_checkpoint(qtbot, window, path) and "stop the training first" in window.status_label.text()
    assert (
        not window.document.model.from_run or window.document.model.checkpoint is not None
    )  # nothing was opened mid-run
    assert window.session.running
    with qtbot.waitSignal(window.training_finished, timeout=5000):
        qtbot.mouseClick(_widget(window, QPushButton, "stopButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.session.running, timeout=2000)
    assert all(item.isEnabled() for item in locks)
    assert open_checkpoint(qtbot, window, path)


def test_closing_mid_training_stops_cleanly_and_keeps_the_autosave(window, qtbot, monkeypatch) -> None:
    _configure(window, epochs=200, batch=32)
    epochs = []
    window.training_epoch.connect(epochs.append)
    window.dialogs.confirm_answer = True
    qtbot.mouseClick(_widget(window, QPushButton, "trainButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(epochs) >= 1 and Path(window.session.autosave_path).exists(), timeout=60000)
    assert window.close()
    assert not window.session.running
    saved = ckpt.load(window.session.autosave_path)
    assert saved.epochs_done >= 1 and saved.architecture == "lenet"


@pytest.mark.parametrize("button", ["train", "evaluate"])
def test_closing_while_the_data_set_loads_starts_nothing_afterwards(window, qtbot, button) -> None:
    """What waited for the data set ran once it arrived, after the window had closed: a run or an
    evaluation then started in a closed window, and the app aborted at exit ("QThread: Destroyed while
    thread is still running")."""
    assert not window.loader.datasets  # the first press loads the data set on a worker
    started: list[str] = []
    window.training_steps.connect(lambda _: started.append("training"))
    window.training_finished.connect(lambda _: started.append("training"))
    window.evaluation.evaluated.connect(lambda _: started.append("evaluation"))
    {"train": window.training_panel.train_button, "evaluate": window.evaluation.evaluate_button}[button].click()
    assert window.loader.loading
    window.close()
    qtbot.wait(500)  # the worker's signals, queued while the window closed, are delivered now
    assert started == [] and not window.session.job.running and not window.evaluation.job.running


def test_closing_can_be_cancelled(window, qtbot, monkeypatch) -> None:
    _configure(window, epochs=200, batch=8)
    steps = _collect_steps(window)
    window.dialogs.confirm_answer = False
    qtbot.mouseClick(_widget(window, QPushButton, "trainButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(steps) > 1, timeout=30000)
    assert not window.close()
    assert window.session.running
    window.dialogs.confirm_answer = True
    assert window.close()  # asked again and answered yes: the run stops and the window closes
    assert not window.session.running and not window.garbage_collector.active


@pytest.mark.parametrize(
    "name, filter_name, written",
    [
        ("digits", "PyTorch program, torch.export (*.pt2)", "digits.pt2"),  # no suffix: the filter adds its own
        ("digits.pt2", "TorchScript (*.pt)", "digits.pt2"),  # a typed suffix wins over the filter
    ],
)
def test_export_writes_a_program_that_answers_like_the_model(
    window, qtbot, tmp_path, monkeypatch, name, filter_name, written
) -> None:
    import threading

    import torch
    from PySide6.QtWidgets import QFileDialog

    from engine.inference import BUNDLED_MODEL

    assert open_checkpoint(qtbot, window, BUNDLED_MODEL)
    out = tmp_path / "exports"  # apart from the settings file the window writes in tmp_path
    out.mkdir()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(out / name), filter_name))
    window.exporter.model_dialog()
    worker = window.exporter.job.worker  # the export runs on a worker: torch.export takes a second or so
    assert worker is not None and "Exporting pt2" in window.status_label.text()
    qtbot.waitUntil(lambda: not window.exporter.job.running, timeout=30000)
    assert worker.native_thread_id != threading.get_native_id()
    assert [p.name for p in out.iterdir()] == [written]
    program = torch.export.load(str(out / written)).module()
    images = torch.rand(3, 1, 28, 28)
    model, norm = window.document.model.checkpoint.model, window.document.model.checkpoint.normalization
    with torch.no_grad():
        torch.testing.assert_close(program(images), model((images - norm.mean) / norm.std), rtol=1e-4, atol=1e-4)
    assert "Exported pt2" in window.status_label.text()


def test_the_training_curves_export_as_a_table_and_an_image_of_what_is_plotted(
    window, qtbot, tmp_path, monkeypatch
) -> None:
    import csv

    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QFileDialog

    _configure(window, epochs=2)
    steps = _collect_steps(window)
    with qtbot.waitSignal(window.training_finished, timeout=60000):
        qtbot.mouseClick(_widget(window, QPushButton, "trainButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.session.running, timeout=5000)
    out = tmp_path / "exports"
    out.mkdir()
    answers = iter([(str(out / "run.csv"), "CSV table (*.csv)"), (str(out / "run"), "PNG image (*.png)")])
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: next(answers))
    window.findChild(type(window.actions["saveCheckpointAction"]), "exportCurvesAction").trigger()
    window.exporter.curves_dialog()
    assert sorted(p.name for p in out.iterdir()) == ["run.csv", "run.png"] and not window.dialogs.errors

    rows = list(csv.DictReader((out / "run.csv").open()))
    assert [int(r["step"]) for r in rows] == [s.step for s in steps]
    assert [float(r["loss"]) for r in rows] == pytest.approx([s.loss for s in steps], rel=1e-7)
    assert [float(r["smoothed_loss"]) for r in rows] == pytest.approx(list(window.plots.smoothed.view), rel=1e-7)
    ends = [r for r in rows if r["epoch"]]
    assert [int(r["epoch"]) for r in ends] == [1, 2] and int(ends[-1]["step"]) == steps[-1].step
    history = window.document.model.checkpoint.history.epochs
    assert [float(r["test_accuracy"]) for r in ends] == pytest.approx([e["test_accuracy"] for e in history])
    assert [float(r["test_loss"]) for r in ends] == pytest.approx([e["test_loss"] for e in history], rel=1e-6)

    image = QImage(str(out / "run.png"))
    assert not image.isNull() and image.width() >= window.plots.width() and image.height() >= window.plots.height()
    assert window.settings.exports_dir == out


def test_a_curves_image_taken_right_after_new_data_shows_all_of_it(qtbot, tmp_path) -> None:
    """pyqtgraph fits its views while painting: an image taken in the same event-loop turn as a
    checkpoint's history arrived showed the old loss range, the curve cut off below 0.08."""
    import math

    from gui.loss_plot import TrainingPlots

    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.resize(600, 700)
    plots.show()
    qtbot.waitExposed(plots)
    steps = list(range(1, 2001))
    losses = [2.0 * 0.998**step for step in steps]  # down to 0.036
    plots.load_history(
        {
            "steps": steps,
            "losses": losses,
            "epochs": [
                {"epoch": e, "step": 400 * e, "test_loss": 0.5 / e, "test_accuracy": 0.9 + 0.01 * e}
                for e in range(1, 6)
            ],
        }
    )
    plots.write_png(tmp_path / "curves.png")  # no event processing in between
    (_, x_high), (y_low, y_high) = plots.loss_plot.getViewBox().viewRange()
    assert y_low <= math.log10(min(losses)) and y_high >= math.log10(max(losses)) and x_high >= steps[-1]
    (_, epoch_high), (accuracy_low, _) = plots.accuracy_plot.getViewBox().viewRange()
    assert epoch_high >= 5 and accuracy_low <= 91


def test_exporting_curves_before_there_are_any_or_to_a_missing_folder_says_why(window, tmp_path) -> None:
    window.exporter.curves_dialog()
    assert window.dialogs.errors == ["Nothing to export yet: train a model or open a checkpoint."]
    window.plots.add_losses([5, 10], [2.0, 1.5])
    assert window.exporter.curves(tmp_path / "missing" / "run.csv") is None
    assert "cannot write" in window.dialogs.errors[-1] and "run.csv" in window.dialogs.errors[-1]
    assert not (tmp_path / "missing").exists()


def test_an_export_that_fails_says_why_and_a_second_waits_for_the_first(window, qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from engine.inference import BUNDLED_MODEL

    assert open_checkpoint(qtbot, window, BUNDLED_MODEL)
    answer = {"path": str(tmp_path / "digits.pt2")}
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (answer["path"], ""))
    window.exporter.model_dialog()
    worker = window.exporter.job.worker
    assert worker is not None
    window.exporter.model_dialog()  # refused while the first is under way
    assert window.exporter.job.worker is worker and "still being written" in window.status_label.text()
    qtbot.waitUntil(lambda: not window.exporter.job.running, timeout=30000)
    assert (tmp_path / "digits.pt2").is_file() and not window.dialogs.errors
    answer["path"] = str(tmp_path / "gone" / "digits.pt2")
    window.exporter.model_dialog()  # said at once, before any work
    assert not window.exporter.job.running
    assert (
        window.dialogs.errors
        and "does not exist" in window.dialogs.errors[-1]
        and str(tmp_path / "gone") in window.dialogs.errors[-1]
    )


@pytest.mark.parametrize("where", ["canvas", "loss plot", "epochs field", "bars", "panel"])
def test_a_checkpoint_dropped_anywhere_opens(window, qtbot, tmp_path, where) -> None:
    import shutil

    from engine.inference import BUNDLED_MODEL
    from tests.gui_helpers import drop_file

    path = tmp_path / "dropped.pt"
    shutil.copy(BUNDLED_MODEL, path)
    before = window.recognition.predictor
    over = {
        "canvas": window.recognition.canvas,
        "loss plot": window.plots.loss_plot,
        "epochs field": window.training_panel.epochs_spin,
        "bars": window.recognition.bars,
        "panel": window.training_panel,
    }[where]
    epochs = window.training_panel.epochs_spin.value()
    assert drop_file(window, over, path)
    qtbot.waitUntil(
        lambda: window.document.model.checkpoint is not None and window.document.model.checkpoint.path == path
    )
    assert window.recognition.predictor is not before and "Opened dropped" in window.status_label.text()
    assert window.training_panel.epochs_spin.value() == epochs  # nothing typed into it, nothing changed


def test_a_dropped_file_that_is_no_checkpoint_is_refused_or_explained(window, qtbot, tmp_path) -> None:
    from tests.gui_helpers import drop_file

    before = window.recognition.predictor
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    assert not drop_file(window, window.plots.loss_plot, notes)  # not taken: the cursor says so while dragging
    fake = tmp_path / "fake.pt"
    fake.write_bytes(b"garbage" * 100)
    assert drop_file(window, window.plots.loss_plot, fake)
    qtbot.waitUntil(lambda: bool(window.dialogs.errors))
    assert "fake.pt" in window.dialogs.errors[-1] and window.recognition.predictor is before


@pytest.mark.parametrize("content", [b"", b"garbage" * 100])
def test_corrupt_checkpoint_shows_an_error_and_keeps_the_model(qtbot, window, tmp_path, content) -> None:
    before = window.recognition.predictor
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    assert not open_checkpoint(qtbot, window, bad)
    assert window.dialogs.errors and "bad.pt" in window.dialogs.errors[-1]
    assert window.recognition.predictor is before


def test_open_save_and_resume_from_a_checkpoint(window, qtbot, tmp_path) -> None:
    _configure(window, epochs=1)
    with qtbot.waitSignal(window.training_finished, timeout=60000):
        qtbot.mouseClick(_widget(window, QPushButton, "trainButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.session.running, timeout=5000)
    path = tmp_path / "one.pt"
    assert window.document.save_to(path)
    assert open_checkpoint(qtbot, window, path)
    steps_per_epoch = 10  # 320 training images, batch 32
    assert window.plots.epoch_steps == [steps_per_epoch]  # the test loss sits where the epoch ended
    assert window.recognition.predictor.source == "one.pt"
    panel = window.training_panel
    assert panel.resume_check.isEnabled()
    saved_lr = panel.lr_spin.value()
    panel.lr_spin.setValue(saved_lr * 3)
    panel.resume_check.setChecked(True)  # the run will take the checkpoint's settings: shown and locked
    assert panel.lr_spin.value() == pytest.approx(saved_lr) and not panel.lr_spin.isEnabled()
    assert not panel.model_combo.isEnabled() and not panel.batch_spin.isEnabled()
    assert panel.epochs_spin.isEnabled() and panel.device_combo.isEnabled() and panel.dataset_combo.isEnabled()
    panel.resume_check.setChecked(False)
    assert panel.lr_spin.isEnabled() and panel.model_combo.isEnabled()
    panel.resume_check.setChecked(True)
    _widget(window, QSpinBox, "epochsSpin").setValue(1)
    with qtbot.waitSignal(window.training_finished, timeout=60000) as finished:
        qtbot.mouseClick(_widget(window, QPushButton, "trainButton"), Qt.MouseButton.LeftButton)
    assert finished.args[0].epochs_done == 2
    window.plots.flush()
    assert len(window.plots.losses) == 4 and window.plots.epoch_numbers == [1, 2]
    qtbot.waitUntil(lambda: not window.session.running, timeout=5000)
    assert not panel.lr_spin.isEnabled() and panel.epochs_spin.isEnabled()  # after the run: still continuing
    # the continued run is the opened file's model, changed: Save writes it back there
    assert window.windowTitle().startswith("one.pt") and window.isWindowModified()
    window.actions["saveCheckpointAction"].trigger()
    assert ckpt.load(path).epochs_done == 2 and not window.isWindowModified()


def _train_one_epoch(window, qtbot) -> None:
    _configure(window, epochs=1)
    with qtbot.waitSignal(window.training_finished, timeout=60000):
        qtbot.mouseClick(_widget(window, QPushButton, "trainButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.session.running, timeout=5000)


def test_save_writes_the_file_of_the_model_on_hand_and_never_another_models(window, qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from engine.inference import BUNDLED_MODEL

    asked: list[str] = []

    def save_dialog(parent, caption, start, filters):
        asked.append(caption)
        return str(tmp_path / f"asked{len(asked)}.pt"), filters

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_dialog)
    _train_one_epoch(window, qtbot)
    assert window.training_panel.progress.format().startswith("finished: 1 epoch, test accuracy")
    assert window.windowTitle().startswith("unsaved model") and window.isWindowModified()
    window.actions["saveCheckpointAction"].trigger()  # a new run has no file yet: Save asks
    first = tmp_path / "asked1.pt"
    assert asked == ["Save checkpoint"] and first.is_file()
    assert window.windowTitle().startswith("asked1.pt") and not window.isWindowModified()
    first_bytes = first.read_bytes()

    other = tmp_path / "other.pt"
    other.write_bytes(BUNDLED_MODEL.read_bytes())
    assert open_checkpoint(qtbot, window, other)
    assert window.windowTitle().startswith("other.pt")
    window.actions[
        "saveCheckpointAction"
    ].trigger()  # the opened model goes back to its own file, not to the last one saved
    assert len(asked) == 1 and first.read_bytes() == first_bytes
    assert ckpt.load(other).architecture == "digitnet"

    other_bytes = other.read_bytes()
    _train_one_epoch(window, qtbot)  # a new model: Save asks again, leaving both files alone
    window.actions["saveCheckpointAction"].trigger()
    assert len(asked) == 2 and (tmp_path / "asked2.pt").is_file()
    assert first.read_bytes() == first_bytes and other.read_bytes() == other_bytes
    assert ckpt.load(tmp_path / "asked2.pt").architecture == "lenet"


def test_open_recent_greys_out_a_file_that_is_gone(qtbot, window, tmp_path) -> None:
    from engine.inference import BUNDLED_MODEL

    kept, gone = tmp_path / "kept.pt", tmp_path / "gone.pt"
    for path in (kept, gone):
        path.write_bytes(BUNDLED_MODEL.read_bytes())
        assert open_checkpoint(qtbot, window, path)
    gone.unlink()
    window.menus["recent"].aboutToShow.emit()  # as when the user opens the menu
    entries = {a.text(): a.isEnabled() for a in window.menus["recent"].actions() if a.text() and a.menu() is None}
    assert entries == {str(gone.resolve()) + " (not found)": False, str(kept.resolve()): True, "&Clear list": True}
    window.findChild(type(window.actions["openCheckpointAction"]), "clearRecentAction").trigger()
    assert window.document.recent() == [] and not window.menus["recent"].isEnabled()
    assert window.findChild(type(window.actions["openCheckpointAction"]), "clearRecentAction") is None


def test_the_batch_size_cannot_go_below_what_the_model_trains_on(window) -> None:
    panel = window.training_panel
    panel.model_combo.setCurrentIndex(panel.model_combo.findData("digitnet"))
    assert panel.batch_spin.minimum() == 2  # batch norm
    panel.model_combo.setCurrentIndex(panel.model_combo.findData("lenet"))
    assert panel.batch_spin.minimum() == 1


def test_a_history_without_epoch_steps_places_each_epoch_in_proportion(window) -> None:
    epochs = [
        {"epoch": e, "train_loss": 0.5, "test_loss": 0.4, "test_accuracy": 0.9, "seconds": 1.0} for e in (1, 2, 3)
    ]
    window.plots.load_history({"steps": [50, 100, 150, 200, 250, 300], "losses": [1.0] * 6, "epochs": epochs})
    assert window.plots.epoch_steps == [100, 200, 300]  # they were all drawn at step 300
    window.plots.load_history({"steps": [50, 100], "losses": [1.0] * 2, "epochs": epochs[:2]}, steps_per_epoch=40)
    assert window.plots.epoch_steps == [40, 80]


def test_the_training_menu_drives_the_run_from_the_keyboard(window, qtbot) -> None:
    from PySide6.QtTest import QTest

    def enabled() -> dict[str, bool]:
        return {
            name: window.findChild(type(window.actions["openCheckpointAction"]), name).isEnabled()
            for name in ("trainAction", "pauseAction", "stopAction", "evaluateAction")
        }

    _configure(window, epochs=50)
    assert enabled() == {"trainAction": True, "pauseAction": False, "stopAction": False, "evaluateAction": True}
    with qtbot.waitSignal(window.training_steps, timeout=60000):
        QTest.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert enabled() == {"trainAction": False, "pauseAction": True, "stopAction": True, "evaluateAction": True}
    QTest.keyClick(window, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    assert window.training_panel.pause_button.isChecked() and window.session.job.worker.control.paused
    with qtbot.waitSignal(window.training_finished, timeout=10000) as finished:
        QTest.keyClick(window, Qt.Key.Key_Period, Qt.KeyboardModifier.ControlModifier)
    assert finished.args[0].stopped
    qtbot.waitUntil(lambda: not window.session.running, timeout=5000)
    assert enabled()["trainAction"] and not enabled()["stopAction"]
    with qtbot.waitSignal(window.evaluation.evaluated, timeout=30000):
        QTest.keyClick(window, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert window.tabs.currentWidget() is window.evaluation


def test_continue_after_a_run_continues_that_run(window, qtbot) -> None:
    panel = window.training_panel
    assert not panel.resume_check.isEnabled()  # nothing to continue yet
    _train_one_epoch(window, qtbot)
    assert panel.resume_check.isEnabled() and not panel.resume_check.isChecked()
    panel.resume_check.setChecked(True)
    for epochs_done in (2, 3):  # Continue stays ticked, and each run goes on from the one before
        with qtbot.waitSignal(window.training_finished, timeout=60000) as finished:
            qtbot.mouseClick(_widget(window, QPushButton, "trainButton"), Qt.MouseButton.LeftButton)
        assert finished.args[0].epochs_done == epochs_done
        qtbot.waitUntil(lambda: not window.session.running, timeout=5000)
        assert panel.resume_check.isChecked() and "The last run (lenet)" in panel.resume_check.toolTip()
    window.plots.flush()
    assert window.plots.epoch_numbers == [1, 2, 3]


def test_settings_remember_hyper_parameters_and_device(window, tmp_path) -> None:
    from PySide6.QtCore import QSettings

    from gui.main_window import MainWindow

    _widget(window, QSpinBox, "epochsSpin").setValue(7)
    _widget(window, QSpinBox, "batchSizeSpin").setValue(48)
    window.save_settings()
    again = MainWindow(settings=QSettings(window.settings.store.fileName(), QSettings.Format.IniFormat))
    try:
        assert again.training_panel.epochs_spin.value() == 7
        assert again.training_panel.batch_spin.value() == 48
        assert again.training_panel.device() == window.training_panel.device()
    finally:
        again.deleteLater()


def test_settings_remember_the_data_set_and_the_folders_opened(window, tmp_path) -> None:
    import shutil

    from PySide6.QtCore import QSettings

    from gui.main_window import MainWindow

    def reopened() -> MainWindow:
        return MainWindow(settings=QSettings(window.settings.store.fileName(), QSettings.Format.IniFormat))

    mine, other = tmp_path / "mine", tmp_path / "other"
    mine.mkdir(), other.mkdir()
    window.training_panel.add_folder(str(mine))
    window.training_panel.add_folder(str(other))
    assert window.training_panel.select_dataset("fashion-mnist")
    window.save_settings()
    again = reopened()
    try:
        assert again.training_panel.dataset_choice() == ("fashion-mnist", None)
        assert again.training_panel.folders() == [str(mine), str(other)]
        again.training_panel.add_folder(str(mine))
        again.save_settings()
    finally:
        again.deleteLater()
    shutil.rmtree(other)  # a folder that is gone is not offered again
    third = reopened()
    try:
        assert third.training_panel.dataset_choice() == ("mnist", str(mine))
        assert third.training_panel.folders() == [str(mine)]
    finally:
        third.deleteLater()


def test_bad_data_folder_reports_and_unlocks_the_panel(window, qtbot, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    window.training_panel.add_folder(str(empty))
    qtbot.mouseClick(_widget(window, QPushButton, "trainButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(window.dialogs.errors), timeout=10000)
    assert "no train images file" in window.dialogs.errors[-1]
    qtbot.waitUntil(lambda: _widget(window, QPushButton, "trainButton").isEnabled(), timeout=5000)


def test_by_default_training_runs_at_the_windows_priority_on_every_core(window, qtbot) -> None:
    """Measured (benchmarks/bench_gui.py --niceness 0): lateness p99 18 ms against 9 ms at nice +10, and 7 %
    faster; a low priority also let any busy program starve training. So it is a setting, off by default."""
    import os
    import threading

    assert not window.actions["lowPriorityAction"].isChecked()
    _configure(window, epochs=200, batch=64)
    steps = _collect_steps(window)
    qtbot.mouseClick(_widget(window, QPushButton, "trainButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(steps) > 2, timeout=30000)
    worker = window.session.job.worker
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    niceness = _thread_niceness() if sys.platform.startswith("linux") else {}
    window.session.stop(wait=True)
    assert not worker.lowered_priority and worker.intra_op_threads == (os.cpu_count() or 2)
    if niceness:
        assert niceness[worker.native_thread_id] == base
