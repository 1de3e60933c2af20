"""Hostile run stores (engine/runs.py, `runs`): records that are not regular files, numbers and nesting no
record has, endless lines, names that would steer the terminal. Each is listed as damaged (or read in
bounded time and memory) and the others are listed."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from engine import cli
from engine.runs import RECORD, STEPS, list_runs, read_curves
from tests.test_runs import _record


def _good_and(tmp_path: Path, name: str, text: str | None = None) -> Path:
    """A store with one good run and a folder ``name`` (with ``text`` as its record, when given)."""
    _record(tmp_path).close()
    folder = tmp_path / name
    folder.mkdir()
    if text is not None:
        (folder / RECORD).write_text(text)
    return folder


def _listed(tmp_path: Path) -> dict[str, object]:
    start = time.perf_counter()
    runs = {r.id: r for r in list_runs(tmp_path)}
    assert time.perf_counter() - start < 10
    assert any(r.status == "finished" and r.epochs_done == 2 for r in runs.values())  # the good run is listed
    return runs


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero", "link to a fifo"])
def test_a_record_that_is_not_a_regular_file_is_damaged_and_never_read(tmp_path: Path, kind: str) -> None:
    folder = _good_and(tmp_path, "odd")
    if kind == "fifo":
        os.mkfifo(folder / RECORD)
    elif kind == "link to /dev/zero":
        (folder / RECORD).symlink_to("/dev/zero")
    else:
        os.mkfifo(tmp_path / "pipe")
        (folder / RECORD).symlink_to(tmp_path / "pipe")
    run = _listed(tmp_path)["odd"]
    assert run.status == "damaged" and "not a regular file" in run.damaged


def test_steps_that_are_a_fifo_or_one_endless_line_are_read_in_bounded_time(tmp_path: Path) -> None:
    recorder = _record(tmp_path)
    recorder.close()
    (run,) = list_runs(tmp_path)
    steps = run.folder / STEPS
    steps.unlink()
    os.mkfifo(steps)
    assert len(read_curves(run).step) == 0  # not blocked waiting for a writer
    steps.unlink()
    with open(steps, "wb") as handle:
        handle.write(
            b"step,epoch,loss,lr,seconds\n1,0.1,2.0,0.01,1.0\n" + b"7" * (40 << 20) + b"\n2,0.2,1.5,0.01,2.0\n"
        )
    start = time.perf_counter()
    curves = read_curves(run)
    assert time.perf_counter() - start < 10 and list(curves.step) == [1, 2]


@pytest.mark.parametrize(
    "record, reason",
    [
        ('{"seconds": 1' + "0" * 400 + ', "status": "finished"}', None),  # 10**400: no float holds it
        ('{"final_accuracy": -1' + "0" * 400 + "}", None),
        ('{"config": ' + "[" * 100_000 + "]" * 100_000 + "}", "cannot be read"),
        ('{"config": {"a": ' + "[" * 900 + "]" * 900 + "}}", "nested"),
    ],
)
def test_numbers_and_nesting_no_record_has_are_damaged_or_left_out(tmp_path: Path, record: str, reason, capsys) -> None:
    _good_and(tmp_path, "odd", record)
    run = _listed(tmp_path)["odd"]
    if reason is None:
        assert run.damaged is None and run.seconds == 0.0 and run.final_accuracy is None
    else:
        assert run.status == "damaged" and reason in run.damaged
    os.environ["DIGIT_STUDIO_RUNS"] = str(tmp_path)
    try:
        assert cli.main(["runs", "--json"]) == 0 and len(json.loads(capsys.readouterr().out)) == 2
        assert cli.main(["runs"]) == 0 and len(capsys.readouterr().out.splitlines()) == 2
    finally:
        del os.environ["DIGIT_STUDIO_RUNS"]


def test_a_running_record_with_an_impossible_pid_is_interrupted(tmp_path: Path) -> None:
    record = {"status": "running", "pid": 2**31, "host": socket.gethostname()}
    _good_and(tmp_path, "odd", json.dumps(record))
    assert _listed(tmp_path)["odd"].status == "interrupted"
    (tmp_path / "odd" / RECORD).write_text(json.dumps({**record, "pid": 10**30}))
    assert _listed(tmp_path)["odd"].status == "interrupted"


def test_runs_escapes_names_that_would_steer_the_terminal(tmp_path: Path, capsys, monkeypatch) -> None:
    name = "evil\x1b[31mred\r\nline two\u202eright-to-left"
    _good_and(tmp_path, "odd", json.dumps({"name": name, "status": "finished"}))
    monkeypatch.setenv("DIGIT_STUDIO_RUNS", str(tmp_path))
    assert cli.main(["runs"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 2 and "\x1b" not in out and "\r" not in out and "\u202e" not in out
    assert "evil\\x1b[31mred\\r\\nline two\\u202eright-to-left" in out
