"""The Runs tab: runs the app trains are recorded and listed, named, compared, exported, opened and
deleted; a damaged record is listed as such."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.test_gui_training import _configure


def _train(window, qtbot, epochs: int, lr: float) -> None:
    _configure(window, epochs=epochs)
    window.training_panel.lr_spin.setValue(lr)
    with qtbot.waitSignal(window.training_finished, timeout=60000):
        window.start_training()
    qtbot.waitUntil(lambda: not window.session.running, timeout=5000)


def test_runs_are_recorded_compared_and_exported(window, qtbot, tmp_path: Path) -> None:
    view = window.runs_view
    (view.store / "damaged").mkdir(parents=True)
    (view.store / "damaged" / "run.json").write_text("{")
    _train(window, qtbot, epochs=1, lr=0.01)
    _train(window, qtbot, epochs=2, lr=0.02)
    assert window.document.save_to(tmp_path / "kept.pt")  # a Save of the run's model joins the run's record
    window.plots.flush()  # the live plots: learning rate per logged step, training accuracy per epoch
    assert len(window.plots.lr_curve.getData()[0]) == len(window.plots.steps.view) > 0
    assert len(window.plots.train_accuracy_curve.getData()[1]) == 2
    with qtbot.waitSignal(view.refreshed, timeout=10000):
        window.tabs.setCurrentWidget(view)  # opening the tab reads the store, in the background
    assert view.table.rowCount() == 3 and "1 damaged" in view.summary.text()
    statuses = sorted(view.table.item(row, 9).text() for row in range(3))
    assert statuses.count("finished") == 2 and statuses[0].startswith("damaged")

    view.table.sortItems(4, Qt.SortOrder.DescendingOrder)  # by epochs: the 2-epoch run first
    assert view.table.item(0, 4).text() == "2/2"
    view.table.item(0, 0).setText("two epochs")  # as an edit in the table would
    view.table.selectAll()
    runs = view.selected_runs()
    assert len(runs) == 3 and {r.name for r in runs} >= {"two epochs"}
    qtbot.waitUntil(lambda: not view.busy, timeout=10000)  # the curves, read in the background
    assert len(view.loss_plot.getPlotItem().listDataItems()) == 2  # the damaged one has no curves
    assert len(view.accuracy_plot.getPlotItem().listDataItems()) == 2
    legend = [label.text for _, label in view.loss_plot.getPlotItem().legend.items]
    assert "two epochs" in legend
    for axis in range(3):  # step, epoch, wall time
        view.axis_combo.setCurrentIndex(axis)
        assert len(view.loss_plot.getPlotItem().listDataItems()) == 2
    view.smoothing_slider.setValue(0)
    raw = view.loss_plot.getPlotItem().listDataItems()[0].getData()[1]
    view.smoothing_slider.setValue(90)
    smoothed = view.loss_plot.getPlotItem().listDataItems()[0].getData()[1]
    assert len(raw) == len(smoothed) and raw[0] == smoothed[0] and not (raw == smoothed).all()

    assert str(tmp_path / "kept.pt") in next(r for r in runs if r.name == "two epochs").checkpoints
    written = window.exporter.run_comparison(tmp_path / "compare.csv")
    assert written is not None and (tmp_path / "compare.png").stat().st_size > 0
    rows = list(csv.DictReader(open(tmp_path / "compare.csv")))
    assert len(rows) == 3 and {"two epochs"} <= {row["name"] for row in rows} and "lr" in rows[0]

    view.table.clearSelection()
    view.table.selectRow(0)
    (chosen,) = view.selected_runs()
    autosave, kept = map(Path, chosen.checkpoints)
    assert autosave.is_file() and kept == tmp_path / "kept.pt"
    qtbot.mouseClick(view.open_button, Qt.MouseButton.LeftButton)  # its newest checkpoint
    qtbot.waitUntil(
        lambda: window.document.model.file is not None and Path(window.document.model.file) == kept, timeout=10000
    )
    with qtbot.waitSignal(view.refreshed, timeout=10000):
        qtbot.mouseClick(view.delete_button, Qt.MouseButton.LeftButton)  # confirmed (the fixture answers yes)
    assert view.table.rowCount() == 2 and not autosave.exists() and kept.exists()  # the user's own file stays


def test_the_store_is_read_off_the_gui_thread_and_a_fifo_record_is_listed_as_damaged(window, qtbot) -> None:
    import threading

    import gui.runs_view

    view = window.runs_view
    fifo_run, fifo_steps = view.store / "fifo", view.store / "fifo-steps"
    for folder in (fifo_run, fifo_steps):
        folder.mkdir(parents=True)
    os.mkfifo(fifo_run / "run.json")  # nobody ever writes to these: opening them for reading would block
    (fifo_steps / "run.json").write_text(json.dumps({"status": "finished", "epochs": []}))
    os.mkfifo(fifo_steps / "steps.csv")
    threads: list[str] = []
    list_runs, read_curves = gui.runs_view.list_runs, gui.runs_view.read_curves
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            gui.runs_view,
            "list_runs",
            lambda store: threads.append(threading.current_thread().name) or list_runs(store),
        )
        patch.setattr(
            gui.runs_view,
            "read_curves",
            lambda run: threads.append(threading.current_thread().name) or read_curves(run),
        )
        with qtbot.waitSignal(view.refreshed, timeout=10000):
            window.tabs.setCurrentWidget(view)
        assert view.table.rowCount() == 2 and "1 damaged" in view.summary.text()
        view.table.selectAll()
        qtbot.waitUntil(lambda: not view.busy, timeout=10000)
    assert len(threads) == 2 and threading.main_thread().name not in threads
    (steps_run,) = [run for run in view.runs if not run.damaged]
    assert len(view.loss_plot.getPlotItem().listDataItems()) == 1 and steps_run.id == "fifo-steps"
