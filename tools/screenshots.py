"""Take the README's screenshots of the real app: train on MNIST, draw a digit, evaluate.

    xvfb-run -s "-screen 0 1600x1000x24" python tools/screenshots.py --data ../shared/datasets/mnist

Writes docs/screenshot-main.png, docs/screenshot-evaluate.png and docs/screenshot-number.png (a number
written on the wide canvas). Uses real mouse events for drawing
and clicking, the same way the tests do.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "mnist"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args()
    os.environ["DIGIT_STUDIO_DATA"] = str(Path(args.data).resolve().parent)

    from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from gui.main_window import MainWindow
    from tests.drawn_digits import SHAPES
    from tests.gui_helpers import ScriptedDialogs, drag

    app = QApplication(sys.argv)  # noqa: F841 (kept alive for the whole run)
    settings_dir = tempfile.TemporaryDirectory()  # removed at exit: a fresh user's settings, not this user's
    os.environ["DIGIT_STUDIO_RUNS"] = str(Path(settings_dir.name) / "runs")  # and a fresh user's run records
    settings = QSettings(str(Path(settings_dir.name) / "s.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, dialogs=ScriptedDialogs())
    window.resize(1500, 920)
    window.show()

    def wait_for(signal, timeout_ms: int = 600_000) -> None:
        loop = QEventLoop()
        signal.connect(loop.quit)
        QTimer.singleShot(timeout_ms, loop.quit)
        loop.exec()

    window.training_panel.epochs_spin.setValue(args.epochs)
    QTest.mouseClick(window.training_panel.train_button, Qt.MouseButton.LeftButton)
    wait_for(window.training_finished)
    QTest.qWait(500)
    canvas = window.recognition.canvas
    for stroke in SHAPES[3][0]:
        drag(canvas, [(0.2 + 0.6 * x, 0.12 + 0.76 * y) for x, y in stroke])
    window.recognition.saliency_check.setChecked(True)
    window.plots.flush()
    QTest.qWait(300)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(out / "screenshot-main.png"))

    window.tabs.setCurrentWidget(window.evaluation)
    QTest.mouseClick(window.evaluation.evaluate_button, Qt.MouseButton.LeftButton)
    wait_for(window.evaluation.evaluated)
    QTest.qWait(500)
    window.grab().save(str(out / "screenshot-evaluate.png"))

    window.tabs.setCurrentWidget(window.runs_view)  # the run just trained, in its record
    window.runs_view.table.selectAll()
    panel = window.recognition
    QTest.mouseClick(panel.wide_check, Qt.MouseButton.LeftButton)
    panel.canvas.clear()
    for k, digit in enumerate([2, 0, 2, 6]):
        for stroke in SHAPES[digit][0]:
            drag(panel.canvas, [(0.25 + 0.7 * k + 0.45 * x, 0.18 + 0.64 * y) for x, y in stroke])
    QTest.mouseClick(panel.digit_buttons[3], Qt.MouseButton.LeftButton)
    QTest.qWait(500)
    window.grab().save(str(out / "screenshot-number.png"))
    print(f"wrote {out / 'screenshot-main.png'}, {out / 'screenshot-evaluate.png'}, {out / 'screenshot-number.png'}")
    window.dialogs.unsaved_answer = "discard"  # a measurement, not a user's model
    window.close()


if __name__ == "__main__":
    main()
