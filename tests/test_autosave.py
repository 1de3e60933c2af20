"""Autosave files: one per run, never overwritten, and the folder kept to the newest few."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from gui.autosave import new_autosave_path, prune
from tests.helpers import write_autosaves


def test_runs_started_in_the_same_second_get_files_of_their_own(tmp_path: Path) -> None:
    now = dt.datetime(2026, 11, 27, 13, 5, 9)
    first = new_autosave_path(tmp_path, "lenet", "mnist", now)
    assert first.name == "lenet-mnist-20261127-130509.pt"
    first.write_bytes(b"x")
    second = new_autosave_path(tmp_path, "lenet", "mnist", now)
    assert second.name == "lenet-mnist-20261127-130509-2.pt"


def test_prune_keeps_the_newest_and_every_protected_file(tmp_path: Path) -> None:
    paths = write_autosaves(tmp_path, 8)
    other = tmp_path / "notes.txt"
    other.write_text("not an autosave")
    deleted = prune(tmp_path, keep=3, protect=[paths[1]])
    assert sorted(deleted) == sorted([paths[0], *paths[2:5]])
    assert sorted(tmp_path.iterdir()) == sorted([other, paths[1], *paths[5:]])
    assert prune(tmp_path, keep=3, protect=[paths[1]]) == []
