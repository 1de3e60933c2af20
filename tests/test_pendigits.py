"""Other writers' pen digits (engine/pendigits.py): the file read and checked, trajectories drawn as a person
draws them; and strokes grouped into digits as the wide canvas groups them (engine.reading.group_strokes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.errors import DataError
from engine.pendigits import PENDIGITS, number_drawing, random_drawing, read_pendigits, render, split
from engine.reading import group_strokes

ONE = " 50,100, 50, 80, 50, 60, 50, 40, 50, 30, 50, 20, 50, 10, 50,  0, 1"
SEVEN = "  0,100, 30,100, 60,100, 90,100, 80, 70, 70, 40, 60, 20, 50,  0, 7"


def test_a_file_is_read_with_y_downward(tmp_path: Path) -> None:
    path = tmp_path / "pen.tra"
    path.write_text(f"{ONE}\n{SEVEN}\n\n")
    digits = read_pendigits(path)
    assert list(digits.labels) == [1, 7] and digits.trajectories.shape == (2, 8, 2)
    assert digits.trajectories[1, 0].tolist() == [0.0, 0.0]  # the 7 starts at the top left


@pytest.mark.parametrize(
    "text, problem",
    [
        ("1,2,3\n", "3 values"),
        ("a,b\n", "integers"),
        (ONE.replace("100", "101", 1) + "\n", "outside"),
        (ONE[:-1] + "12\n", "outside"),
        ("", "no digits"),
    ],
)
def test_a_bad_file_is_refused_naming_it_and_the_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.tra"
    path.write_text(text)
    with pytest.raises(DataError, match=problem) as caught:
        read_pendigits(path)
    assert "bad.tra" in str(caught.value)
    with pytest.raises(DataError, match="cannot be read"):
        read_pendigits(tmp_path / "missing.tra")


def test_a_drawing_is_dark_ink_in_its_box_with_the_pen_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "pen.tra"
    path.write_text(f"{ONE}\n")
    one = read_pendigits(path).trajectories[0]
    ink = render(one, (100, 200), (50, 10, 80, 80), pen=6)
    rows, cols = np.flatnonzero(ink.max(1) > 127), np.flatnonzero(ink.max(0) > 127)
    assert 7 <= rows[0] <= 9 and 89 <= rows[-1] <= 92  # 80 px tall with the pen's round ends
    assert 4 <= len(cols) <= 8 and 86 <= cols.mean() <= 94  # a vertical line of the pen's width, centred
    drawing = random_drawing(one, np.random.default_rng(0), distort=True)
    assert drawing.shape == (280, 280) and drawing.dtype == np.uint8 and drawing.min() == 0 and drawing.max() == 255


@pytest.mark.skipif(not PENDIGITS.is_file(), reason="../shared/datasets/pendigits is not beside the project")
def test_the_held_out_share_is_apart_from_the_training_share_and_always_the_same() -> None:
    digits = read_pendigits(PENDIGITS)
    extents = np.ptp(digits.trajectories, axis=1)
    assert np.all(extents >= 99)  # x and y each span 0-100: no digit keeps its aspect ratio
    train, held = split(digits)
    assert len(train) + len(held) == len(digits) and abs(len(held) - 0.2 * len(digits)) < 1
    assert np.array_equal(split(digits)[1].labels, held.labels)
    image, strokes = number_drawing(list(held.trajectories[:3]), np.random.default_rng(0), (0.2, 0.4))
    assert image.shape[0] == 280 and len(strokes) == 3
    assert strokes[0][:, 0].max() < strokes[1][:, 0].min() and strokes[1][:, 0].max() < strokes[2][:, 0].min()
    x, y = np.round(strokes[1][3]).astype(int)
    assert image[y, x] < 128  # the strokes lie on the ink


def test_strokes_are_grouped_by_their_columns_and_order() -> None:
    # a 5 (body, then its bar above), a 1, and a 4 of two crossing strokes
    extents = [(0, 50), (10, 60), (80, 90), (120, 170), (150, 160)]
    assert group_strokes(extents) == [[0, 1], [2], [3, 4]]
    assert group_strokes([(0, 50), (45, 100)]) == [[0], [1]]  # touching neighbours stay apart
    assert group_strokes([(100, 150), (0, 50), (40, 60)]) == [[1, 2], [0]]  # left to right, whatever the order
    assert group_strokes([]) == []
