from __future__ import annotations

import gc
import threading

from gui.garbage_collection import GuiThreadGarbageCollector


class _Cycle:
    """A self-referencing object that records which thread finalised it."""

    finalised_in: list[str] = []

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        _Cycle.finalised_in.append(threading.current_thread().name)


def _allocate_a_lot(keep: list) -> None:
    keep.extend([] for _ in range(50_000))  # far past generation 0's threshold (live objects count)


def test_cycles_are_collected_on_the_gui_thread_not_in_a_busy_worker(qtbot) -> None:
    collector = GuiThreadGarbageCollector(interval_ms=10)
    collector.start()
    try:
        assert not gc.isenabled()
        _Cycle.finalised_in.clear()
        for _ in range(5):
            _Cycle()
        kept: list = []
        worker = threading.Thread(target=_allocate_a_lot, args=(kept,), name="worker")
        worker.start()
        worker.join()
        assert _Cycle.finalised_in == []  # the worker crossed the threshold, yet collected nothing
        qtbot.waitUntil(lambda: len(_Cycle.finalised_in) == 5, timeout=5000)
        assert set(_Cycle.finalised_in) == {threading.main_thread().name}
    finally:
        collector.stop()


def test_stop_collects_and_restores_automatic_collection() -> None:
    assert gc.isenabled()
    collector = GuiThreadGarbageCollector()
    collector.start()
    _Cycle.finalised_in.clear()
    _Cycle()
    collector.stop()
    assert gc.isenabled() and _Cycle.finalised_in == [threading.main_thread().name]


def test_the_main_window_collects_on_its_thread_while_open(window) -> None:
    assert window.garbage_collector.active and not gc.isenabled()
    assert window.close()
    assert not window.garbage_collector.active and gc.isenabled()
