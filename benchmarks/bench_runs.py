"""The Runs tab at scale: listing many recorded runs, and overlaying long runs' curves.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_runs.py [--runs 500] [--overlay 10] [--steps 5000]

Writes --runs records (30 epochs each) into a temporary store, --overlay of them with --steps logged
steps, then times: reading the store (engine.runs.list_runs), opening the tab (the table filled), and
redrawing the overlay of the long runs (their curves read once, then the plots drawn and painted),
against reading a single run, so the ratios show how it scales.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from common import median, print_json, print_table

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def write_store(store: Path, runs: int, long_runs: int, steps: int) -> None:
    from engine.events import EpochEvent, FinishedEvent, StepEvent
    from engine.runs import RunRecorder

    for k in range(runs):
        recorder = RunRecorder(
            store, {"model": "lenet", "epochs": 30, "batch_size": 32 + k, "lr": 0.01}, "mnist", "cpu", "cli"
        )
        count = steps if k < long_runs else 30
        for step in range(1, count + 1):
            epoch = (step - 1) * 30 // count
            recorder.on_event(StepEvent(epoch, step, count // 30 or 1, step, 2.0 / step**0.5, 0.01, 1000.0))
            if step * 30 % count == 0:
                recorder.on_event(
                    EpochEvent(step * 30 // count, 30, 0.1, 0.1, 0.9 + step / count / 20, 1.0, 1.0, 0.95, 0.01)
                )
        recorder.on_event(FinishedEvent(False, 30, 1.0, 1000.0, 0.1, 0.95))
        recorder.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--overlay", type=int, default=10)
    parser.add_argument("--steps", type=int, default=5000)
    args = parser.parse_args()

    from PySide6.QtCore import QItemSelectionModel, Qt
    from PySide6.QtWidgets import QApplication

    from engine.runs import list_runs
    from gui.runs_view import RunsView

    app = QApplication(sys.argv)
    folder = tempfile.TemporaryDirectory()
    store = Path(folder.name) / "runs"
    single = Path(folder.name) / "one"
    write_store(store, args.runs, args.overlay, args.steps)
    write_store(single, 1, 0, 30)

    def timed(fn, repeats: int = 5) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return median(times)

    list_one = timed(lambda: list_runs(single))
    list_all = timed(lambda: list_runs(store))
    view = RunsView(store, [])
    view.resize(900, 700)
    view.show()
    open_tab = timed(lambda: (view.refresh(), app.processEvents()))
    long_ids = {run.id for run in view.runs if run.config["batch_size"] < 32 + args.overlay}
    selection = view.table.selectionModel()
    view.table.blockSignals(True)  # select them all, then draw once
    for row in range(view.table.rowCount()):
        if view.table.item(row, 0).data(Qt.ItemDataRole.UserRole) in long_ids:
            selection.select(
                view.table.model().index(row, 0),
                QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows,
            )
    view.table.blockSignals(False)
    start = time.perf_counter()
    view._curves.clear()
    view.redraw()
    app.processEvents()
    first = time.perf_counter() - start  # reading the curves included
    redraw = timed(lambda: (view.redraw(), view.loss_plot.repaint(), view.accuracy_plot.repaint()))
    rows = [
        (
            f"read the store: 1 run vs {args.runs}, ms",
            f"{1000 * list_one:.1f}",
            f"{1000 * list_all:.1f}",
            f"{list_all / list_one:.0f}x",
        ),
        (f"open the Runs tab with {args.runs} runs (table filled), ms", "-", f"{1000 * open_tab:.0f}", ""),
        (
            f"overlay {len(long_ids)} runs of {args.steps} steps, first draw (curves read), ms",
            "-",
            f"{1000 * first:.0f}",
            "",
        ),
        (
            f"overlay {len(long_ids)} runs of {args.steps} steps, redraw (axis, smoothing), ms",
            "-",
            f"{1000 * redraw:.1f}",
            "",
        ),
    ]
    print_table("Runs tab", rows)
    print_json(
        "runs",
        {
            "runs": args.runs,
            "list_one_ms": round(1000 * list_one, 2),
            "list_all_ms": round(1000 * list_all, 1),
            "open_tab_ms": round(1000 * open_tab, 1),
            "overlay_first_ms": round(1000 * first, 1),
            "overlay_redraw_ms": round(1000 * redraw, 1),
            "overlaid": len(long_ids),
        },
    )


if __name__ == "__main__":
    main()
