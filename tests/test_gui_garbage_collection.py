from __future__ import annotations

import gc
import threading

import pytest

from gui.garbage_collection import GuiThreadGarbageCollector, generation_due


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


def test_the_window_warms_up_in_the_background_then_freezes_start_up_objects(window, qtbot) -> None:
    import sys

    qtbot.waitUntil(lambda: gc.get_freeze_count() > 0, timeout=30000)  # frozen when the warm-up is done
    assert not window.warm_up.running and not window.garbage_collector.holding
    assert "torch._dynamo" in sys.modules  # what the first optimiser would otherwise import
    assert gc.get_freeze_count() > 100_000
    assert window.close()
    assert gc.get_freeze_count() == 0 and gc.isenabled()


@pytest.mark.parametrize(
    "counts, due",
    [
        ((700, 10, 10), None),  # at the thresholds, not past them
        ((701, 0, 0), 0),
        ((701, 11, 0), 1),  # the oldest generation due is collected, with the younger ones
        ((0, 11, 11), 2),
        ((0, 0, 11), 2),
    ],
)
def test_the_oldest_generation_past_its_threshold_is_due(counts, due) -> None:
    assert generation_due(counts, (700, 10, 10)) == due


def test_hold_defers_collections_and_freeze_exempts_what_is_alive(qtbot) -> None:
    collector = GuiThreadGarbageCollector(interval_ms=10)
    collector.start()
    try:
        collector.hold()
        assert collector.active and collector.holding
        _Cycle.finalised_in.clear()
        _Cycle()  # garbage made during start-up work
        kept: list = []
        _allocate_a_lot(kept)
        qtbot.wait(100)
        assert _Cycle.finalised_in == []  # held: nothing collected, however much was allocated
        collector.freeze()
        assert not collector.holding and gc.get_freeze_count() > 0
        _Cycle()  # garbage made afterwards is collected as before
        _allocate_a_lot(kept)
        qtbot.waitUntil(lambda: len(_Cycle.finalised_in) == 1, timeout=5000)
    finally:
        collector.stop()
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    assert _Cycle.finalised_in == [threading.main_thread().name] * 2  # stop() collected the frozen one too
