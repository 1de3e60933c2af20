"""No output ever destroys an input: every command refuses (exit 2, one line) to write over a file it reads,
a write-protected file, a folder or a special file, before doing any work; temporaries of killed writes
are cleaned up; one unreadable input among many spoils nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from engine.errors import UserError
from engine.files import atomic_write, check_output, remove_stale_temporaries

FAST = ["--model", "lenet", "--batch-size", "32", "--device", "cpu", "--quiet", "--epochs", "1"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("outputs") / "a.pt"
    assert main(["train", "--data", str(tiny_data), "--out", str(out), *FAST]) == 0
    out.chmod(0o444)  # no test may change it
    return out


@pytest.fixture
def data_copy(tiny_data: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_data, tmp_path / "mnist"))


def one_line_error(capsys, *needles: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(n in err[0] for n in needles), err


def test_export_over_its_checkpoint_is_refused(trained: Path, tmp_path: Path, capsys) -> None:
    before = digest(trained)
    link = tmp_path / "link.pt"
    link.symlink_to(trained)
    for out in (trained, link, trained.parent / ".." / trained.parent.name / trained.name):
        assert main(["export", "--checkpoint", str(trained), "--out", str(out), "--format", "torchscript"]) == 2
        one_line_error(capsys, "cannot write", "which this command reads")
    assert digest(trained) == before


def test_evaluate_csv_over_its_checkpoint_or_data_is_refused(trained: Path, data_copy: Path, capsys) -> None:
    before = digest(trained)
    assert main(["evaluate", "--checkpoint", str(trained), "--data", str(data_copy), "--csv", str(trained)]) == 2
    one_line_error(capsys, "which this command reads")
    labels = data_copy / "t10k-labels-idx1-ubyte.gz"
    data_before = digest(labels)
    assert main(["evaluate", "--checkpoint", str(trained), "--data", str(data_copy), "--csv", str(labels)]) == 2
    one_line_error(capsys, "which this command reads")
    assert digest(trained) == before and digest(labels) == data_before


def test_train_out_over_its_data_or_resumed_checkpoint_is_refused(trained: Path, data_copy: Path, capsys) -> None:
    images = data_copy / "train-images-idx3-ubyte.gz"
    before = digest(images)
    assert main(["train", "--data", str(data_copy), "--out", str(images), *FAST]) == 2
    one_line_error(capsys, "which this command reads")
    assert digest(images) == before
    copy = data_copy.parent / "copy.pt"
    shutil.copy(trained, copy)
    copy.chmod(0o644)
    resumed_before = digest(copy)
    assert (
        main(["train", "--resume", str(copy), "--out", str(copy), "--data", str(data_copy), "--quiet", "--epochs", "1"])
        == 2
    )
    one_line_error(capsys, "which this command reads")
    assert digest(copy) == resumed_before


def test_a_write_protected_file_is_never_replaced(trained: Path, tmp_path: Path, capsys) -> None:
    protected = tmp_path / "keep.onnx"
    protected.write_text("precious")
    protected.chmod(0o444)
    assert main(["export", "--checkpoint", str(trained), "--out", str(protected), "--format", "torchscript"]) == 2
    one_line_error(capsys, "write-protected")
    assert protected.read_text() == "precious"
    with pytest.raises(PermissionError):  # the one writer refuses too, whoever calls it (root included)
        atomic_write(protected, lambda tmp: Path(tmp).write_text("gone"))
    assert protected.read_text() == "precious" and os.listdir(tmp_path) == ["keep.onnx"]


def test_outputs_that_are_folders_or_special_files_are_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    for name, needle in [("pipe", "not a regular file"), (".", "folder"), ("missing/x.pt", "does not exist")]:
        with pytest.raises(UserError, match=needle):
            check_output(tmp_path / name)
    assert check_output(tmp_path / "new.pt", [tmp_path / "other.pt"]) == tmp_path / "new.pt"


def test_an_unwritable_out_is_found_before_training(
    tiny_data: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.training

    monkeypatch.setattr(engine.training.Trainer, "run", lambda *a, **k: pytest.fail("trained first"))
    os.mkfifo(tmp_path / "fifo.pt")
    assert main(["train", "--data", str(tiny_data), "--out", str(tmp_path / "fifo.pt"), *FAST]) == 2
    one_line_error(capsys, "not a regular file")


def test_stale_temporaries_of_killed_writes_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / ".model.pt.digit-studio-999999999-abcdefgh.tmp"  # no such process
    live = tmp_path / f".model.pt.digit-studio-{os.getppid()}-abcdefgh.tmp"  # a process that runs: a write in progress
    mine = tmp_path / "notes.tmp"  # not of the app's naming
    alike = tmp_path / ".report.2024-december.tmp"  # the user's, named like a temporary
    other = tmp_path / ".notes.txt.digit-studio-999999999-abcdefgh.tmp"  # another target's: not this write's
    for path in (dead, live, mine, alike, other):
        path.write_bytes(b"partial")
    atomic_write(tmp_path / "model.pt", lambda tmp: Path(tmp).write_bytes(b"new"))
    assert not dead.exists() and live.exists() and mine.exists() and alike.exists() and other.exists()
    assert (tmp_path / "model.pt").read_bytes() == b"new"
    atomic_write(tmp_path / "report", lambda tmp: Path(tmp).write_bytes(b"new"))  # ".report.2024-december.tmp"
    assert alike.exists()
    os.utime(live, (1, 1))  # a day old: its process id has long been reused
    assert remove_stale_temporaries(tmp_path, "model.pt") == [live]


def test_predict_reports_each_bad_input_and_keeps_the_others(trained: Path, tmp_path: Path, capsys) -> None:
    good = np.full((100, 100), 255, np.uint8)
    good[20:80, 45:55] = 0
    Image.fromarray(good).save(tmp_path / "a_good.png")
    bomb = tmp_path / "b_bomb.png"
    from tests.test_images import _png

    bomb.write_bytes(_png(90_000, 90_000))
    os.mkfifo(tmp_path / "c_pipe.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    paths = [
        str(tmp_path / "a_good.png"),
        str(bomb),
        str(tmp_path / "c_pipe.png"),
        str(tmp_path / ("x" * 300)),
        str(locked),
    ]
    try:
        code = main(["predict", "--checkpoint", str(trained), "--json", *paths])
    finally:
        locked.chmod(stat.S_IRWXU)
    out, err = capsys.readouterr()
    assert code == 2
    items = {Path(i["path"]).name: i for i in json.loads(out)}
    assert items["a_good.png"]["label"] is not None and "error" not in items["a_good.png"]
    assert "megapixels" in items["b_bomb.png"]["error"] and "regular file" in items["c_pipe.png"]["error"]
    assert "cannot be read" in items["x" * 300]["error"]
    assert "Traceback" not in err and len(err.strip().splitlines()) == len(items) - 1  # the locked folder fails too
