"""Paths longer than the system allows (a component over 255 bytes, or over 4,096 in all) are bad input:
one line naming the problem, exit 2, never an internal error."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import cli
from engine.inference import BUNDLED_MODEL


@pytest.mark.parametrize("long", ["x" * 300, "/".join(["y" * 200] * 25)], ids=["component", "whole"])
@pytest.mark.parametrize(
    "command",
    [
        ["train", "--data", "{long}", "--epochs", "1", "--device", "cpu", "--no-record"],
        ["evaluate", "--data", "{long}"],
        ["teach", "{long}", "--out", "{tmp}/taught.pt"],
        ["predict", "{long}"],
        ["export", "--checkpoint", str(BUNDLED_MODEL), "--out", "{long}/m.pt2"],
    ],
    ids=["train", "evaluate", "teach", "predict", "export"],
)
def test_a_path_too_long_is_one_line_of_bad_input(tmp_path: Path, capsys, long: str, command: list[str]) -> None:
    argv = [part.format(long=str(tmp_path / long), tmp=tmp_path) for part in command]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error" not in err[0] and "Traceback" not in err[0]
