"""Reading numbers (engine/reading.py): digits found left to right with their boxes, strokes of one digit
kept together, one digit read exactly as before, and bad input answered in bounded time."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from engine.data import read_idx
from engine.inference import load_bundled
from engine.number_reader import READER_FILE, NumberReader, prepare_line
from engine.reading import read_number
from tests.drawn_digits import SHAPES, drawn_digits, render
from tests.numbers import compose, pen_digit, random_number

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "datasets" / "mnist-sample"


@pytest.fixture(scope="module")
def predictor():
    return load_bundled()


def test_drawn_numbers_are_read_left_to_right_with_their_boxes(predictor) -> None:
    rng = np.random.default_rng(0)
    right = 0
    for _ in range(20):
        number = random_number(rng, int(rng.integers(2, 7)))
        image = 255 - compose([pen_digit(d, rng) for d in number], [int(rng.integers(10, 30)) for _ in number[1:]], rng)
        reading = read_number(predictor, image)
        right += reading.text == "".join(map(str, number))
        assert len(reading.digits) == len(number)
        lefts = [d.box[0] for d in reading.digits]
        assert lefts == sorted(lefts)
        for d in reading.digits:
            x, y, w, h = d.box
            assert 0 <= x and 0 <= y and x + w <= image.shape[1] and y + h <= image.shape[0]
            assert w > 0 and h > 0.5 * max(b.box[3] for b in reading.digits) or d.prediction.label == 1
            assert d.ink is not None and d.prediction.prepared.pixels.shape == (28, 28)
    assert right >= 18


def test_one_digit_is_read_exactly_as_a_single_image(predictor) -> None:
    for _, image in drawn_digits()[::3]:
        reading = read_number(predictor, image)
        alone = predictor.predict(image)
        assert len(reading.digits) == 1 and reading.digits[0].ink is None
        np.testing.assert_array_equal(reading.digits[0].prediction.probabilities, alone.probabilities)


def test_strokes_of_one_digit_that_do_not_touch_stay_one_digit(predictor) -> None:
    five = [
        [(0.35, 0.02), (0.95, 0.02)],  # the bar, apart from the body
        [(0.3, 0.16), (0.25, 0.48), (0.6, 0.42), (0.82, 0.6), (0.75, 0.86), (0.5, 0.96), (0.2, 0.86)],
    ]
    four = [[(0.55, 0.05), (0.12, 0.62), (0.95, 0.62)], [(0.72, 0.3), (0.72, 0.98)]]  # crossing strokes
    seven = [[(0.1, 0.08), (0.9, 0.08), (0.42, 0.96)], [(0.4, 0.55), (0.85, 0.55)]]
    for label, strokes in ((5, five), (4, four), (7, seven)):
        image = render(strokes, pen=14)
        reading = read_number(predictor, image)
        assert reading.text == str(label), (label, reading.text)
    dotted_one = [[(0.5, 0.05 + 0.12 * k), (0.5, 0.12 + 0.12 * k)] for k in range(8)]  # a broken stroke
    assert read_number(predictor, render(dotted_one, pen=14)).text == "1"


def test_numbers_of_mnist_digits_with_small_gaps(predictor) -> None:
    images = read_idx(SAMPLE / "t10k-images-idx3-ubyte.gz", 2051)
    labels = read_idx(SAMPLE / "t10k-labels-idx1-ubyte.gz", 2049)
    rng = np.random.default_rng(1)
    right = 0
    for _ in range(30):
        chosen = rng.integers(0, len(images), int(rng.integers(2, 7)))
        image = compose([images[i] for i in chosen], [int(rng.integers(2, 9)) for _ in chosen[1:]], rng)
        right += read_number(predictor, image).text == "".join(str(labels[i]) for i in chosen)
    assert right >= 25


@pytest.mark.skipif(not READER_FILE.is_file(), reason="the number reader is not installed")
def test_touching_digits_are_read_as_a_sequence(predictor) -> None:
    images = read_idx(SAMPLE / "t10k-images-idx3-ubyte.gz", 2051)
    labels = read_idx(SAMPLE / "t10k-labels-idx1-ubyte.gz", 2049)
    rng = np.random.default_rng(2)
    reader = NumberReader.load()
    right = 0
    for _ in range(30):
        chosen = rng.integers(0, len(images), int(rng.integers(2, 7)))
        image = compose([images[i] for i in chosen], [int(rng.integers(-4, 1)) for _ in chosen[1:]], rng)
        truth = "".join(str(labels[i]) for i in chosen)
        right += read_number(predictor, image).text == truth
        strip = prepare_line(image.astype(np.float32) / 255)
        assert strip is not None and strip.pixels.shape[0] == 28
        assert len(reader.read(strip)) >= 1
    assert right >= 20


def test_no_digit_and_bad_input_are_answered_in_bounded_time(predictor) -> None:
    assert read_number(predictor, np.full((280, 280), 255, np.uint8)).text == ""
    dash = read_number(predictor, render([[(0.05, 0.5), (0.95, 0.5)]], pen=16))
    assert all(d.prediction.doubt for d in dash.digits)  # a line is no digit: said unsure
    rng = np.random.default_rng(3)
    for shape in [(12, 4000), (4000, 12), (1, 1), (3000, 3000)]:
        image = np.full(shape, 255, np.uint8)
        image[rng.random(shape) < 0.02] = 0
        start = time.perf_counter()
        read_number(predictor, image)
        assert time.perf_counter() - start < 5
    text_like = np.full((400, 1200), 255, np.uint8)
    for row in range(10):
        for column in range(40):
            text_like[20 + 38 * row : 40 + 38 * row, 10 + 29 * column : 25 + 29 * column] = 0
    start = time.perf_counter()
    reading = read_number(predictor, text_like)
    assert reading.digits == () and "too many" in reading.doubt
    assert time.perf_counter() - start < 2


def test_a_wide_image_of_one_shape_per_digit(predictor) -> None:
    strokes = [SHAPES[d][0] for d in (2, 0, 2, 6)]
    parts = [255 - render(s, size=200, box=160, left=20, top=20, pen=14) for s in strokes]
    image = 255 - compose(parts, [20, 20, 20], np.random.default_rng(4))
    assert read_number(predictor, image).text == "2026"


def test_the_strokes_decide_which_ink_is_one_digit(predictor) -> None:
    """Given the strokes, a 1 whose ink touches the 0 beside it stays a digit, and a 4 of two strokes is one."""
    import math

    from PIL import Image, ImageDraw

    strokes = [
        [(0.45, 0.15), (0.45, 0.85)],
        [(0.68 + 0.19 * math.sin(a / 10 * math.pi), 0.5 - 0.36 * math.cos(a / 10 * math.pi)) for a in range(21)],
        [(1.25, 0.15), (1.05, 0.6), (1.4, 0.6)],
        [(1.3, 0.35), (1.3, 0.88)],
    ]
    points = [np.array([(280 * x, 280 * y) for x, y in stroke]) for stroke in strokes]
    image = Image.new("L", (840, 280), 255)
    draw = ImageDraw.Draw(image)
    for stroke in points:
        draw.line([tuple(p) for p in stroke], fill=0, width=18, joint="curve")
        for x, y in stroke:
            draw.ellipse((x - 9, y - 9, x + 9, y + 9), fill=0)
    drawing = np.asarray(image)
    by_strokes = read_number(predictor, drawing, strokes=points)
    assert by_strokes.text == "104"
    (x1, _, w1, _), (x0, _, _, _) = by_strokes.digits[0].box, by_strokes.digits[1].box
    assert x1 + w1 < x0 + 20 and w1 < 40  # the 1's box holds the 1, not the 0 it touches
    assert len(read_number(predictor, drawing).digits) <= 3  # the ink alone has the 1 and 0 as one mark


def test_a_reading_longer_than_any_number_says_so(predictor) -> None:
    from PIL import Image, ImageDraw

    image = Image.new("L", (6000, 120), 255)
    ImageDraw.Draw(image).line([(20 + 12 * k, 20 if k % 2 else 100) for k in range(495)], fill=0, width=4)
    start = time.perf_counter()
    reading = read_number(predictor, np.asarray(image))  # a zigzag
    assert time.perf_counter() - start < 5
    assert "plausible" in reading.doubt
