"""Live training plots: running loss per logged step (raw and smoothed), per-epoch test metrics and
training accuracy, and the learning rate per logged step.

Each curve is one ``PlotDataItem`` fed from a growing numpy buffer with ``setData``; incoming points
only mark the plot dirty, and a timer redraws at most ``REDRAW_HZ`` times a second, so a fast run
cannot make the GUI spend its time repainting.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QVBoxLayout, QWidget

from engine.events import EpochEvent, StepEvent
from engine.files import atomic_write
from gui import figures
from gui.image_files import save_png

# Each redraw repaints the plot on the GUI thread, with the GIL held for much of it, so training in the
# worker waits too: with the default model training on 2 cores, 20 redraws a second cost 15 % of its
# samples/s against 10, for no visible gain on a curve that moves this slowly (benchmarks/bench_gui.py).
REDRAW_HZ = 10
LR_REDRAW_EVERY = 10  # the learning-rate curve redraws once a second while a run trains
MAX_LOADED_POINTS = 20_000  # of a checkpoint's step losses shown (see thinned)
EMPTY_STEPS = 100  # the x range of an empty loss plot, so that its axis has ticks
EMPTY_EPOCHS = 5
SMOOTHING = 0.8  # exponential moving average factor for the smoothed loss (bias-corrected, as TensorBoard)


class GrowingBuffer:
    """An append-only float buffer that doubles its capacity, exposing a view of the filled part."""

    def __init__(self, capacity: int = 1024) -> None:
        self._data = np.empty(capacity, dtype=np.float64)
        self._size = 0

    def extend(self, values: np.ndarray | list[float]) -> None:
        values = np.asarray(values, dtype=np.float64)
        needed = self._size + len(values)
        if needed > len(self._data):
            grown = np.empty(max(needed, 2 * len(self._data)), dtype=np.float64)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : needed] = values
        self._size = needed

    def clear(self) -> None:
        self._size = 0

    @property
    def view(self) -> np.ndarray:
        return self._data[: self._size]

    def __len__(self) -> int:
        return self._size


class GridAxis(pg.AxisItem):
    """An axis whose grid lines are opaque: the tick colour already mixed with the white background.

    pyqtgraph draws grid lines in the tick colour made translucent, and Qt's raster engine blends every
    pixel of a translucent line: 40 lines across a 600x500 image took 3.2 ms translucent and 0.11 ms
    opaque, and the grid was most of each plot redraw (a loss plot of 4,000 points: 12 ms with the grid,
    4.5 ms without). Mixed beforehand, the lines look the same on the white background. ``TrainingPlots``
    puts the axes behind the curves, so that a curve crossing a line is drawn over it, as a translucent
    line over the curve used to let it show through.
    """

    BACKGROUND = (255, 255, 255)  # the plots' background (_style)

    def generateDrawSpecs(self, p):  # noqa: N802 (pyqtgraph's name)
        specs = super().generateDrawSpecs(p)
        if specs is None:
            return None
        axis_spec, tick_specs, text_specs = specs
        return axis_spec, [(self._opaque(pen), start, end) for pen, start, end in tick_specs], text_specs

    def _opaque(self, pen: QPen) -> QPen:
        color = pen.color()
        alpha = color.alphaF()
        if alpha >= 1.0 or pen.brush().style() != Qt.BrushStyle.SolidPattern:
            return pen
        mixed = QColor(
            *(
                round(alpha * c + (1 - alpha) * b)
                for c, b in zip((color.red(), color.green(), color.blue()), self.BACKGROUND)
            )
        )
        pen = QPen(pen)
        pen.setColor(mixed)
        return pen


class WholeNumberAxis(GridAxis):
    """An axis for counts (epochs, steps): ticks only at whole numbers, never "1.5"."""

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list:  # noqa: N802, N803 (Qt names)
        levels = [
            (spacing, [v for v in values if float(v).is_integer()])
            for spacing, values in super().tickValues(minVal, maxVal, size)
            if spacing >= 1
        ]
        if levels:
            return levels
        return [(1.0, [float(v) for v in range(math.ceil(minVal), math.floor(maxVal) + 1)])]


class LogAxis(GridAxis):
    """A log-scale axis whose labels never overlap.

    pyqtgraph labels every 2-9 multiple of a decade, and near the top of a decade those are only a few
    pixels apart in a short plot (1, 0.9, 0.8 ran into each other in a 1280x720 window). Every tick and
    grid line stays; a label is kept only ``MIN_LABEL_GAP`` pixels or more from the labels kept before
    it, taken in the order 1, 5, 2, 3, then the rest.
    """

    MIN_LABEL_GAP = 15  # pixels between label centres: a label's height and a little air
    PRIORITY = (1, 5, 2, 3, 4, 6, 7, 8, 9)

    def logTickStrings(self, values: list[float], scale: float, spacing: float) -> list[str | None]:  # noqa: N802
        strings: list[str | None] = list(super().logTickStrings(values, scale, spacing))
        low, high = self.range
        length = self.geometry().height() if self.orientation in ("left", "right") else self.geometry().width()
        pixels_per_decade = length / max(abs(high - low), 1e-9)
        mantissas = [round(10 ** (v - math.floor(v + 1e-9))) for v in values]
        kept: list[float] = []
        for mantissa in self.PRIORITY:
            for j, value in enumerate(values):
                if mantissas[j] != mantissa:
                    continue
                if all(abs(value - other) * pixels_per_decade >= self.MIN_LABEL_GAP for other in kept):
                    kept.append(value)
                else:
                    strings[j] = None
        return strings


def _style(plot: pg.PlotWidget, left: str, bottom: str, legend_offset: tuple[int, int] = (-10, 10)) -> None:
    plot.setBackground(GridAxis.BACKGROUND)  # GridAxis mixes its grid colours with it
    plot.showGrid(x=True, y=True, alpha=0.25)
    plot.setLabel("left", left)
    plot.setLabel("bottom", bottom)
    plot.addLegend(offset=legend_offset)
    plot.setMouseEnabled(x=True, y=False)


def thinned(steps: list[int], losses: list[float], limit: int) -> tuple[list[int], list[float]]:
    """At most ``limit`` points: each the mean loss of a run of neighbouring steps, at the run's last step.

    A checkpoint may hold a million logged losses; a screen shows a few thousand, and adding a million
    points to the curves (with their moving average) would hold up the window for seconds."""
    if len(steps) <= limit:
        return steps, losses
    size = -(-len(steps) // limit)
    count = len(steps) // size * size
    means = np.asarray(losses[:count], dtype=np.float64).reshape(-1, size).mean(axis=1)
    return (
        [int(s) for s in steps[size - 1 : count : size]] + list(steps[count:]),
        [float(v) for v in means] + list(losses[count:]),
    )


class TrainingPlots(QWidget):
    """The loss plot (``lossPlot``) above the accuracy plot (``accuracyPlot``)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._build_loss_plot()
        self._build_accuracy_plot()
        self._build_lr_plot()
        # Steps, epochs and percentages have bounds: a lone point (a run's first epoch) otherwise got
        # pyqtgraph's +-50 around it, up to 147 % and back to epoch -1. Zooming and panning stay inside.
        self.loss_plot.setLimits(xMin=0)
        self.accuracy_plot.setLimits(xMin=0, yMin=0, yMax=100)
        for plot in (self.loss_plot, self.accuracy_plot):
            for name in ("left", "bottom"):  # the grid behind the view box and its curves (see GridAxis)
                plot.getAxis(name).setZValue(plot.getViewBox().zValue() - 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.loss_plot, 3)
        layout.addWidget(self.lr_plot, 1)
        layout.addWidget(self.accuracy_plot, 2)

        self.steps = GrowingBuffer()
        self.losses = GrowingBuffer()
        self.smoothed = GrowingBuffer()
        self.lr_steps = GrowingBuffer()
        self.lrs = GrowingBuffer()
        self.train_accuracies: list[float] = []  # NaN where a record has none (an older checkpoint)
        self.epoch_steps: list[float] = []
        self.epoch_numbers: list[float] = []
        self.test_losses: list[float] = []
        self.accuracies: list[float] = []
        self._ema: float | None = None
        self._count = 0
        self._steps_per_epoch = 1  # of the run shown, for where its epochs end on the step axis
        self._steps_dirty = False  # the step curves; the per-epoch ones change only once an epoch, and
        self._epochs_dirty = False  # setting them anyway repainted the accuracy plot too (278 repaints per 168 redraws)
        self._timer = QTimer(self)
        self._timer.setInterval(1000 // REDRAW_HZ)
        self._timer.timeout.connect(self._redraw)
        self._timer.start()
        self._loss_framed_empty = self._accuracy_framed_empty = False
        self._build_hints()
        self._frame()

    def _build_loss_plot(self) -> None:
        self.loss_plot = pg.PlotWidget(axisItems={"bottom": WholeNumberAxis("bottom"), "left": LogAxis("left")})
        self.loss_plot.setObjectName("lossPlot")
        _style(self.loss_plot, "loss", "step")
        self.loss_plot.setLogMode(y=True)
        self.raw_curve = self.loss_plot.plot(pen=pg.mkPen((120, 160, 230), width=1), name="training loss")
        self.smooth_curve = self.loss_plot.plot(pen=pg.mkPen((20, 70, 180), width=2), name="smoothed")
        self.test_loss_curve = self.loss_plot.plot(
            pen=pg.mkPen((220, 110, 20), width=2),
            symbol="o",
            symbolSize=7,
            symbolBrush=(220, 110, 20),
            name="test loss",
        )
        for curve in (self.raw_curve, self.smooth_curve):
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)

    def _build_accuracy_plot(self) -> None:
        self.accuracy_plot = pg.PlotWidget(axisItems={"bottom": WholeNumberAxis("bottom"), "left": GridAxis("left")})
        self.accuracy_plot.setObjectName("accuracyPlot")
        _style(self.accuracy_plot, "test accuracy (%)", "epoch", legend_offset=(-10, -10))  # bottom right
        self.accuracy_curve = self.accuracy_plot.plot(
            pen=pg.mkPen((30, 150, 60), width=2),
            symbol="o",
            symbolSize=8,
            symbolBrush=(30, 150, 60),
            name="test accuracy",
        )
        self.train_accuracy_curve = self.accuracy_plot.plot(
            pen=pg.mkPen((150, 190, 150), width=1.5, style=Qt.PenStyle.DashLine),
            symbol="t",
            symbolSize=6,
            symbolBrush=(150, 190, 150),
            name="training accuracy",
            connect="finite",
        )

    def _build_lr_plot(self) -> None:
        self.lr_plot = pg.PlotWidget(axisItems={"bottom": WholeNumberAxis("bottom"), "left": GridAxis("left")})
        self.lr_plot.setObjectName("lrPlot")
        _style(self.lr_plot, "learning rate", "step")
        self.lr_plot.showGrid(x=False, y=False)  # a smooth curve needs none, and each redraw costs (bench_gui.py)
        self.lr_plot.getAxis("left").enableAutoSIPrefix(False)  # "(x0.001)" in the label was cut off
        self.lr_plot.getPlotItem().legend.setVisible(False)
        self.lr_curve = self.lr_plot.plot(pen=pg.mkPen((120, 80, 170), width=1.5), name="learning rate")
        self.lr_curve.setDownsampling(auto=True, method="peak")
        self.lr_curve.setClipToView(True)
        self.lr_plot.setLimits(xMin=0)
        self._lr_redraws = 0

    def _build_hints(self) -> None:
        # what an empty plot will show, so a newcomer knows what to do and what to expect
        self.loss_hint = pg.TextItem(
            "Press Train: the training loss appears here", color=(120, 120, 120), anchor=(0.5, 0.5)
        )
        self.accuracy_hint = pg.TextItem("Test accuracy after each epoch", color=(120, 120, 120), anchor=(0.5, 0.5))
        self.loss_plot.addItem(self.loss_hint, ignoreBounds=True)
        self.accuracy_plot.addItem(self.accuracy_hint, ignoreBounds=True)
        self.loss_hint.setPos(EMPTY_STEPS / 2, 0.5)  # mid-height of the empty frame (the loss axis is log10)
        self.accuracy_hint.setPos((1 + EMPTY_EPOCHS) / 2, 50)
        self.accuracy_plot.getViewBox().setDefaultPadding(0.06)  # the last point's marker is not cut at the edge

    # -- data in --------------------------------------------------------------------------------------------
    def clear(self) -> None:
        for buffer in (self.steps, self.losses, self.smoothed, self.lr_steps, self.lrs):
            buffer.clear()
        self.epoch_steps, self.epoch_numbers, self.test_losses, self.accuracies = [], [], [], []
        self.train_accuracies = []
        self._ema = None
        self._count = 0
        self._steps_dirty = self._epochs_dirty = True

    def add_losses(self, steps: list[int], losses: list[float], lrs: list[float] | None = None) -> None:
        if lrs is not None:
            self.lr_steps.extend(steps)
            self.lrs.extend(lrs)
        smoothed = []
        for value in losses:
            self._ema = (1 - SMOOTHING) * value + SMOOTHING * (self._ema or 0.0)
            self._count += 1
            smoothed.append(self._ema / (1 - SMOOTHING**self._count))
        self.steps.extend(steps)
        self.losses.extend(losses)
        self.smoothed.extend(smoothed)
        self._steps_dirty = True

    def add_epoch(
        self, epoch: int, step: int, test_loss: float, test_accuracy: float, train_accuracy: float | None = None
    ) -> None:
        self.train_accuracies.append(float("nan") if train_accuracy is None else 100.0 * train_accuracy)
        self.epoch_numbers.append(epoch)
        self.epoch_steps.append(step)
        self.test_losses.append(test_loss)
        self.accuracies.append(100.0 * test_accuracy)
        self._epochs_dirty = True

    @Slot(object)
    def start_run(self, info: dict) -> None:
        """A run starts (``TrainingSession.started``): its history so far, and where its epochs end."""
        self._steps_per_epoch = int(info["steps_per_epoch"])
        self.load_history(info["history"], self._steps_per_epoch)

    @Slot(object)
    def add_steps(self, events: list[StepEvent]) -> None:
        """A run's logged steps: their losses and learning rates."""
        self.add_losses([e.step for e in events], [e.loss for e in events], [e.lr for e in events])

    @Slot(object)
    def add_epoch_event(self, event: EpochEvent) -> None:
        """A run's completed epoch: its test loss and accuracies, where the epoch ended."""
        self.add_epoch(
            event.epoch, event.epoch * self._steps_per_epoch, event.test_loss, event.test_accuracy, event.train_accuracy
        )

    def load_history(self, history: dict, steps_per_epoch: int | None = None) -> None:
        """Show a checkpoint's history, so a resumed run's curves continue from it.

        Each epoch's test loss goes where the epoch ended on the step axis: its record's ``step``, or, in
        checkpoints written before records had one, ``steps_per_epoch`` when known, else a share of the
        last logged step in proportion to the epoch number (exact when the run ended with an epoch)."""
        self.clear()
        steps, losses = thinned(list(history.get("steps", [])), list(history.get("losses", [])), MAX_LOADED_POINTS)
        self.add_losses(steps, losses)
        records = history.get("epochs", [])
        last_epoch = max((int(r["epoch"]) for r in records), default=0)
        for record in records:
            epoch = int(record["epoch"])
            if "step" in record:
                step = int(record["step"])
            elif steps_per_epoch:
                step = epoch * steps_per_epoch
            else:
                step = round(steps[-1] * epoch / last_epoch) if steps else 0
            self.add_epoch(epoch, step, record["test_loss"], record["test_accuracy"], record.get("train_accuracy"))

    # -- drawing --------------------------------------------------------------------------------------------
    def _redraw(self) -> None:
        if self._steps_dirty:
            self._steps_dirty = False
            self.raw_curve.setData(self.steps.view, np.maximum(self.losses.view, 1e-6))  # log axis
            self.smooth_curve.setData(self.steps.view, np.maximum(self.smoothed.view, 1e-6))
            self._lr_redraws += 1
            if self._lr_redraws % LR_REDRAW_EVERY == 1 or len(self.lr_steps) < 2:  # it changes slowly
                self.lr_curve.setData(self.lr_steps.view, self.lrs.view)
        if self._epochs_dirty:
            self._epochs_dirty = False
            self.test_loss_curve.setData(self.epoch_steps, np.maximum(self.test_losses, 1e-6))
            self.accuracy_curve.setData(self.epoch_numbers, self.accuracies)
            self.train_accuracy_curve.setData(self.epoch_numbers, self.train_accuracies)
        self._frame()

    def _frame(self) -> None:
        """An empty plot gets a fixed frame, steps 0-100, epochs 1-5 and 0-100 %: pyqtgraph's empty range,
        0-1, shows no ticks on a whole-number axis and read as "0.8 %" on the accuracy axis. A plot with
        data follows it again. Only a change between the two touches the ranges, so a user's panning stays."""
        loss_empty, accuracy_empty = not len(self.steps), not self.accuracies
        if loss_empty != self._loss_framed_empty:
            self._loss_framed_empty = loss_empty
            self.loss_hint.setVisible(loss_empty)
            if loss_empty:
                self.loss_plot.setXRange(0, EMPTY_STEPS, padding=0)
            else:
                self.loss_plot.enableAutoRange(axis="x")
        if accuracy_empty != self._accuracy_framed_empty:
            self._accuracy_framed_empty = accuracy_empty
            self.accuracy_hint.setVisible(accuracy_empty)
            self.accuracy_plot.getAxis("bottom").setStyle(showValues=not accuracy_empty)  # no epochs yet
            if accuracy_empty:
                self.accuracy_plot.setRange(xRange=(1, EMPTY_EPOCHS), yRange=(0, 100), padding=0)
            else:
                self.accuracy_plot.enableAutoRange()

    # -- files --------------------------------------------------------------------------------------------
    def is_empty(self) -> bool:
        return not len(self.steps) and not self.epoch_numbers

    def write_csv(self, path: str | Path) -> Path:
        """The curves as plotted, one row per logged step (``loss``, ``smoothed_loss``); the row of the step
        where an epoch ended also has that epoch's ``epoch``, ``test_loss`` and ``test_accuracy`` (0-1).
        Written atomically: a failure (OSError) leaves a file of that name as it was."""
        epochs: dict[float, list[tuple[float, float, float]]] = {}
        for number, step, test_loss, accuracy in zip(
            self.epoch_numbers, self.epoch_steps, self.test_losses, self.accuracies
        ):
            epochs.setdefault(step, []).append((number, test_loss, accuracy / 100.0))
        losses = {
            step: (loss, smoothed)
            for step, loss, smoothed in zip(
                self.steps.view.tolist(), self.losses.view.tolist(), self.smoothed.view.tolist()
            )
        }

        def number(value: float | None) -> str:
            return "" if value is None else f"{value:.8g}"

        def write(temporary: str) -> None:
            with open(temporary, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["step", "loss", "smoothed_loss", "epoch", "test_loss", "test_accuracy"])
                for step in sorted(set(losses) | set(epochs)):
                    loss, smoothed = losses.get(step, (None, None))
                    for epoch, test_loss, accuracy in epochs.get(step, [(None, None, None)]):
                        writer.writerow(
                            [
                                int(step),
                                number(loss),
                                number(smoothed),
                                "" if epoch is None else int(epoch),
                                number(test_loss),
                                number(accuracy),
                            ]
                        )

        return atomic_write(Path(path), write)

    def write_png(self, path: str | Path) -> Path:
        """The loss, learning-rate and accuracy plots, rendered from their data (gui.figures) at a fixed size
        whatever the window's, in one PNG image (atomically; OSError on failure)."""
        self.flush()
        report = figures.page(
            "Training",
            f"{len(self.losses.view):,} logged steps, {len(self.accuracies)} epochs",
            [
                ("Loss", figures.plot_image(self.loss_plot.getPlotItem())),
                *([("Learning rate", figures.plot_image(self.lr_plot.getPlotItem()))] if len(self.lrs.view) else []),
                ("Test accuracy (%)", figures.plot_image(self.accuracy_plot.getPlotItem())),
            ],
        )
        return save_png(report, Path(path))

    def flush(self) -> None:
        """Redraw now (tests and screenshots)."""
        self._steps_dirty = self._epochs_dirty = True
        self._lr_redraws = 0
        self._redraw()
