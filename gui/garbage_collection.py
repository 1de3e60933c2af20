"""Python's cyclic garbage collection, run only on the GUI thread.

CPython collects cycles in whichever thread happens to cross an allocation threshold. When that is a
worker (training pickles a checkpoint, say) and the garbage holds Qt objects, their C++ destructors run
there: the worker takes Qt's lock and waits for the GIL, while the GUI thread, holding the GIL, waits
for that lock. The app froze exactly so in a test run. The remedy used by pyqtgraph, calibre and
others: switch automatic collection off and collect from a timer on the GUI thread, by the same
per-generation thresholds the automatic collector uses.

Collections walk the objects of the generations they collect, and the app's start-up leaves a great
many that live as long as it does: 230,000 once torch and Qt are imported, 350,000 once an optimiser
has pulled in torch._dynamo. Walking them took 70 ms (a generation-1 collection right after that
import) to 140 ms (a full one) on a 2-core CPU (docs/performance.md), a visible freeze each time. So start-up work
runs under :meth:`GuiThreadGarbageCollector.hold`, and :meth:`~GuiThreadGarbageCollector.freeze` then
moves everything alive into the permanent generation that collections skip (``gc.freeze``, which the
gc docs suggest for objects that live as long as the process).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer


def generation_due(counts: tuple[int, int, int], thresholds: tuple[int, int, int]) -> int | None:
    """The oldest generation whose allocation count passed its threshold (collected with all younger
    ones, as CPython's automatic collector does), or None."""
    for generation in range(len(counts) - 1, -1, -1):
        if counts[generation] > thresholds[generation]:
            return generation
    return None


class GuiThreadGarbageCollector(QObject):
    """While started, cycles are collected only here; ``stop()`` hands collection back to Python."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = 100) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect_due)
        self._was_enabled = gc.isenabled()
        self._active = False
        self._frozen = False

    @property
    def active(self) -> bool:
        """Started and not stopped: Python's automatic collection is off (collections may be on hold)."""
        return self._active

    @property
    def holding(self) -> bool:
        return self._active and not self._timer.isActive()

    def start(self) -> None:
        if self._active:
            return
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._active = True
        self._timer.start()

    def hold(self) -> None:
        """No collections at all until :meth:`freeze`: for start-up work whose objects live as long as the app."""
        if self._active:
            self._timer.stop()

    def freeze(self) -> None:
        """Exempt every object alive now from all later collections (until ``stop()``); end a ``hold()``.

        Garbage alive at this moment is kept as well; right after start-up there is little of it.
        """
        if not self._active:
            return
        gc.freeze()
        self._frozen = True
        self._timer.start()

    def stop(self) -> None:
        """Collect everything now, on this (the GUI) thread, and restore automatic collection."""
        if not self._active:
            return
        self._timer.stop()
        self._active = False
        if self._frozen:
            gc.unfreeze()
            self._frozen = False
        gc.collect()
        if self._was_enabled:
            gc.enable()

    def collect_due(self) -> int:
        """Collect what Python's automatic collector would have collected by now; returns objects freed."""
        generation = generation_due(gc.get_count(), gc.get_threshold())
        return 0 if generation is None else gc.collect(generation)
