"""The run records (engine/runs.py): written as a run goes, listed by `runs`, surviving kill -9, damaged
records listed as such; TensorBoard scalars from `train --tensorboard`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.events import EpochEvent, FinishedEvent, StepEvent
from engine.runs import RECORD, STEPS, RunRecorder, delete_run, list_runs, read_curves, update_run
from tests.test_cli import FAST, ROOT, run


def _record(store: Path, epochs: int = 2, finish: bool = True) -> RunRecorder:
    recorder = RunRecorder(store, {"model": "lenet", "epochs": 3, "batch_size": 32}, "mnist", "cpu", "app")
    for epoch in range(epochs):
        for batch in range(1, 5):
            recorder.on_event(StepEvent(epoch, batch, 4, epoch * 4 + batch, 1.0 / (epoch * 4 + batch), 0.01, 1000.0))
        recorder.on_event(EpochEvent(epoch + 1, 3, 0.5, 0.4, 0.8 + 0.05 * epoch, 1.0, 1.0))
    if finish:
        recorder.on_event(FinishedEvent(False, epochs, 2.0, 1000.0, 0.1, 0.85))
    return recorder


def test_a_run_is_recorded_as_it_goes(tmp_path: Path) -> None:
    recorder = _record(tmp_path)
    recorder.close()
    (listed,) = list_runs(tmp_path)
    assert listed.status == "finished" and listed.epochs_done == 2 and listed.total_epochs == 3
    assert listed.final_accuracy == pytest.approx(0.85) and listed.best_accuracy == pytest.approx(0.85)
    assert listed.model == "lenet" and listed.dataset == "mnist" and listed.source == "app"
    assert [e["epoch"] for e in listed.epochs] == [1, 2] and listed.damaged is None
    curves = read_curves(listed)
    assert list(curves.step) == list(range(1, 9)) and curves.loss[0] == pytest.approx(1.0)
    assert curves.epoch[-1] == pytest.approx(2.0) and (curves.seconds >= 0).all()
    update_run(listed, name="baseline", note="lr 0.01")
    (renamed,) = list_runs(tmp_path)
    assert renamed.name == "baseline" and renamed.note == "lr 0.01" and renamed.title == "baseline"


def test_a_run_whose_process_died_is_interrupted_and_damaged_records_are_listed(tmp_path: Path) -> None:
    recorder = _record(tmp_path, epochs=1, finish=False)
    record = json.loads((recorder.run.folder / RECORD).read_text())
    record["pid"] = 2**22 + 12345  # no such process
    (recorder.run.folder / RECORD).write_text(json.dumps(record))
    with open(recorder.run.folder / STEPS, "a") as steps:
        steps.write("9,2.0,0.1")  # a line cut short by the crash
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / RECORD).write_text("{not json")
    (tmp_path / "empty").mkdir()
    runs = {r.id: r for r in list_runs(tmp_path)}
    assert runs[recorder.run.id].status == "interrupted" and runs[recorder.run.id].epochs_done == 1
    assert len(read_curves(runs[recorder.run.id]).step) == 4
    assert runs["broken"].status == "damaged" and "cannot be read" in runs["broken"].damaged
    assert runs["empty"].damaged == f"no {RECORD}"


def test_deleting_a_run_removes_its_own_files_only(tmp_path: Path) -> None:
    owned, mine = tmp_path / "autosave", tmp_path / "mine.pt"
    owned.mkdir()
    (owned / "run.pt").write_bytes(b"x")
    mine.write_bytes(b"y")
    recorder = _record(tmp_path / "store")
    recorder.add_checkpoint(owned / "run.pt")
    recorder.add_checkpoint(mine)
    recorder.close()
    (listed,) = list_runs(tmp_path / "store")
    delete_run(listed, owned=[owned])
    assert not (owned / "run.pt").exists() and mine.exists() and list_runs(tmp_path / "store") == []


def test_train_records_its_run_and_runs_lists_it(tiny_data: Path, tmp_path: Path) -> None:
    store = {"DIGIT_STUDIO_RUNS": str(tmp_path / "runs")}
    out = tmp_path / "a.pt"
    assert run("train", "--data", str(tiny_data), "--epochs", "2", "--out", str(out), *FAST, env=store).returncode == 0
    assert run("train", "--data", str(tiny_data), "--epochs", "1", "--no-record", *FAST, env=store).returncode == 0
    listed = run("runs", "--json", env=store)
    assert listed.returncode == 0, listed.stderr
    (only,) = json.loads(listed.stdout)
    assert only["status"] == "finished" and only["epochs_done"] == 2 and only["source"] == "cli"
    assert only["checkpoints"] == [str(out)] and only["config"]["batch_size"] == 32
    assert 0 <= only["final_accuracy"] <= 1 and len(only["epochs"]) == 2
    plain = run("runs", env=store)
    assert plain.returncode == 0 and only["id"] in plain.stdout and "finished" in plain.stdout


@pytest.mark.slow
def test_a_run_killed_mid_epoch_shows_as_interrupted_with_its_epochs(tiny_data: Path, tmp_path: Path) -> None:
    env = {**os.environ, "DIGIT_STUDIO_RUNS": str(tmp_path / "runs")}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "train", "--data", str(tiny_data), "--epochs", "1000", *FAST],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            runs = list_runs(tmp_path / "runs")
            if runs and runs[0].epochs_done >= 2:
                break
            time.sleep(0.2)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(30)
    (killed,) = list_runs(tmp_path / "runs")
    assert killed.status == "interrupted" and killed.epochs_done >= 2 and killed.damaged is None


def test_train_writes_tensorboard_scalars(tiny_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = tmp_path / "tb"
    result = run(
        "train",
        "--data",
        str(tiny_data),
        "--epochs",
        "2",
        "--tensorboard",
        str(logs),
        "--no-record",
        "--log-every",
        "2",
        *FAST,
    )
    assert result.returncode == 0, result.stderr
    events = EventAccumulator(str(logs))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "loss/train",
        "loss/train_smoothed",
        "loss/test",
        "accuracy/test",
        "learning_rate",
        "samples_per_second",
    } <= tags
    assert len(events.Scalars("accuracy/test")) == 2 and len(events.Scalars("loss/train")) >= 4


def test_a_tensorboard_write_that_fails_stops_the_logging_not_the_run(
    tiny_data: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    pytest.importorskip("tensorboard")
    from engine.cli import main
    from engine.tensorboard import ScalarWriter

    writes = []
    real_add = ScalarWriter._add

    def add_until_the_disk_is_full(self, tag, value, step):
        writes.append(tag)
        if len(writes) > 6:
            raise OSError(28, "No space left on device")
        real_add(self, tag, value, step)

    monkeypatch.setattr(ScalarWriter, "_add", add_until_the_disk_is_full)
    out = tmp_path / "m.pt"
    status = main(
        [
            "train",
            "--data",
            str(tiny_data),
            "--epochs",
            "2",
            "--tensorboard",
            str(tmp_path / "tb"),
            "--no-record",
            "--log-every",
            "2",
            "--out",
            str(out),
            *FAST,
        ]
    )
    err = capsys.readouterr().err
    assert status == 0 and out.is_file() and len(writes) == 7  # no write tried after the failure
    assert err.count("TensorBoard logs") == 1 and "No space left on device" in err and "Traceback" not in err
