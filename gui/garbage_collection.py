"""Python's cyclic garbage collection, run only on the GUI thread.

CPython collects cycles in whichever thread happens to cross an allocation threshold. When that is a
worker (training pickles a checkpoint, say) and the garbage holds Qt objects, their C++ destructors run
there: the worker takes Qt's lock and waits for the GIL, while the GUI thread, holding the GIL, waits
for that lock. The app froze exactly so in a test run. The remedy used by pyqtgraph, calibre and
others: switch automatic collection off and collect from a timer on the GUI thread, by the same
per-generation thresholds the automatic collector uses.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer


class GuiThreadGarbageCollector(QObject):
    """While started, cycles are collected only here; ``stop()`` hands collection back to Python."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = 100) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect_due)
        self._was_enabled = gc.isenabled()

    @property
    def active(self) -> bool:
        return self._timer.isActive()

    def start(self) -> None:
        if self.active:
            return
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer.start()

    def stop(self) -> None:
        """Collect everything now, on this (the GUI) thread, and restore automatic collection."""
        if not self.active:
            return
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()

    def collect_due(self) -> int:
        """Collect the generations whose allocation counts passed their thresholds; returns objects freed."""
        thresholds = gc.get_threshold()
        counts = gc.get_count()
        freed = 0
        for generation in range(3):
            if counts[generation] <= thresholds[generation]:
                break
            freed = gc.collect(generation)
        return freed
