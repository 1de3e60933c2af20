"""GUI responsiveness: event-loop lateness while training, stroke-to-bars latency, start-up time.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui.py [--data DIR] [--seconds 8] [--model lenet]

4. A 10 ms QTimer records how late each tick fires: idle (baseline) vs while a model (the default, or
   --model with its recipe) trains on a worker thread, p50 / p99 / max; and the time from pressing Train
   to the first losses shown. The same while Teach fine-tunes the model on 200 samples of the writer of
   tests/writer_digits.py, and how long Teach takes from the press to the taught model on hand.
6. From the release of a drawn stroke to the updated probability bars, through real mouse events.
5. From process start to the main window shown, against a bare Qt window.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from common import DEFAULT_DATA, ROOT, median, percentile, print_json, print_table

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def lateness(app, seconds: float, until=None) -> list[float]:
    """How late a 10 ms timer fires, for ``seconds`` or (with ``until``) until ``until()`` is true."""
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer

    samples: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]
    timer = QTimer()
    timer.setInterval(10)

    def tick() -> None:
        now = clock.nsecsElapsed()
        samples.append(max(0.0, (now - last[0]) / 1e6 - 10.0))
        last[0] = now
        if until is not None and until():
            loop.quit()

    timer.timeout.connect(tick)
    timer.start()
    loop = QEventLoop()
    if until is None:
        QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()
    timer.stop()
    return samples[1:]


STARTUP = r"""
import sys, time
sys.path.insert(0, {root!r})
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QWidget
app = QApplication([])
{make}
window.show()
QTimer.singleShot(0, lambda: (print(time.time()), app.quit()))
app.exec()
"""


def startup_seconds(make: str, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        code = STARTUP.format(root=str(ROOT), make=make)
        start = time.time()
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
            check=True,
        ).stdout
        times.append(float(out.strip().splitlines()[-1]) - start)
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--model", default=None, help="the model to train (default: the app's default)")
    parser.add_argument(
        "--niceness",
        type=int,
        default=None,
        help="the training thread's nice value increment (default: the app's, "
        "gui.workers.BACKGROUND_NICENESS); 0 trains at the GUI's priority on every core",
    )
    args = parser.parse_args()
    if args.niceness is not None:
        import gui.workers

        gui.workers.BACKGROUND_NICENESS = args.niceness
    os.environ["DIGIT_STUDIO_DATA"] = str(Path(args.data).resolve().parent)
    import tempfile

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from gui.main_window import MainWindow
    from tests.gui_helpers import ScriptedDialogs, drag

    app = QApplication(sys.argv)
    settings_dir = tempfile.TemporaryDirectory()  # removed at exit: a fresh user's settings, not this user's
    window = MainWindow(
        settings=QSettings(str(Path(settings_dir.name) / "s.ini"), QSettings.Format.IniFormat),
        dialogs=ScriptedDialogs(),
    )
    window.resize(1400, 900)
    window.training_panel.select_dataset("mnist")  # from --data
    window.show()
    app.processEvents()

    idle = lateness(app, args.seconds)
    speeds: list[float] = []
    first_losses: list[float] = []
    window.training_steps.connect(lambda events: speeds.append(events[-1].samples_per_second))
    window.training_steps.connect(lambda events: first_losses.append(time.perf_counter()))
    panel = window.training_panel
    if args.model:
        panel.model_combo.setCurrentIndex(panel.model_combo.findData(args.model))  # loads its recipe
    model = panel.model_combo.currentData()
    panel.epochs_spin.setValue(50)
    pressed = time.perf_counter()
    window.start_training()
    while not first_losses:  # data loaded, model built, first steps shown: measure the training itself
        app.processEvents()
        time.sleep(0.01)
    busy = lateness(app, args.seconds)
    to_first_losses = first_losses[0] - pressed
    steps = window.plots.losses.view.size
    window.session.stop(wait=True)

    from tests.writer_digits import write_samples

    samples_dir = tempfile.TemporaryDirectory()
    window.my_digits.folder = write_samples(Path(samples_dir.name) / "samples", per_digit=20)
    window.my_digits.refresh()
    pressed = time.perf_counter()
    window.teacher.teach()
    teaching = lateness(app, 0, until=lambda: not window.teacher.running)
    teach_seconds = time.perf_counter() - pressed
    assert window.document.model.checkpoint.taught, "Teach ended without a taught model"

    canvas = window.recognition.canvas
    stroke_ms = []
    for _ in range(40):
        canvas.clear()
        app.processEvents()
        start = time.perf_counter()
        drag(canvas, [(0.5, 0.15 + 0.07 * k) for k in range(11)])
        app.processEvents()  # the repaint of the bars
        stroke_ms.append(1000 * (time.perf_counter() - start))
    # the drag itself sends 12 events; time the release alone as well
    release_ms = []
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    for _ in range(40):  # the second stroke of a two-stroke digit, on a canvas cleared each time
        canvas.clear()
        drag(canvas, [(0.3, 0.3), (0.6, 0.6)])
        app.processEvents()
        QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(150, 100))
        start = time.perf_counter()
        QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(150, 200))
        app.processEvents()
        release_ms.append(1000 * (time.perf_counter() - start))
    window.dialogs.unsaved_answer = "discard"  # a measurement, not a user's model
    window.close()

    bare = startup_seconds("window = QWidget(); window.resize(1400, 900)")
    full = startup_seconds("from gui.main_window import MainWindow\nwindow = MainWindow()")

    rows = [
        (
            "event-loop lateness p50 ms (idle vs training)",
            f"{percentile(idle, 50):.1f}",
            f"{percentile(busy, 50):.1f}",
            "",
        ),
        (
            "event-loop lateness p99 ms (idle vs training)",
            f"{percentile(idle, 99):.1f}",
            f"{percentile(busy, 99):.1f}",
            "",
        ),
        ("event-loop lateness max ms (idle vs training)", f"{max(idle):.1f}", f"{max(busy):.1f}", ""),
        ("Train pressed -> first losses shown, s", "-", f"{to_first_losses:.2f}", ""),
        (
            "event-loop lateness p99 ms (idle vs Teach, 200 samples)",
            f"{percentile(idle, 99):.1f}",
            f"{percentile(teaching, 99):.1f}",
            "",
        ),
        ("event-loop lateness max ms (idle vs Teach, 200 samples)", f"{max(idle):.1f}", f"{max(teaching):.1f}", ""),
        ("Teach pressed -> taught model on hand, s", "-", f"{teach_seconds:.2f}", ""),
        ("stroke release -> bars updated, median ms", "-", f"{median(release_ms):.1f}", ""),
        ("stroke release -> bars updated, p95 ms", "-", f"{percentile(release_ms, 95):.1f}", ""),
        ("whole stroke (12 mouse events) -> bars, median ms", "-", f"{median(stroke_ms):.1f}", ""),
        ("process start -> window shown, s (bare Qt vs app)", f"{bare:.2f}", f"{full:.2f}", f"{full / bare:.1f}x"),
        (f"{model} training samples/s inside the app", "-", f"{speeds[-1]:,.0f}", ""),
    ]
    print_table(
        f"GUI responsiveness (QT_QPA_PLATFORM={os.environ['QT_QPA_PLATFORM']}, {steps} logged losses while measuring)",
        rows,
    )
    print_json(
        "gui",
        {
            "idle_p50_ms": round(percentile(idle, 50), 2),
            "idle_p99_ms": round(percentile(idle, 99), 2),
            "training_p50_ms": round(percentile(busy, 50), 2),
            "training_p99_ms": round(percentile(busy, 99), 2),
            "training_max_ms": round(max(busy), 2),
            "train_to_first_losses_s": round(to_first_losses, 3),
            "teach_p99_ms": round(percentile(teaching, 99), 2),
            "teach_max_ms": round(max(teaching), 2),
            "teach_seconds": round(teach_seconds, 2),
            "release_to_bars_median_ms": round(median(release_ms), 2),
            "release_to_bars_p95_ms": round(percentile(release_ms, 95), 2),
            "startup_bare_s": round(bare, 3),
            "startup_app_s": round(full, 3),
            "training_sps_in_app": round(speeds[-1]),
            "model": model,
        },
    )


if __name__ == "__main__":
    main()
