"""Property-based: read_number answers any drawing or odd image with a Reading, never an exception."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from engine.inference import load_bundled
from engine.reading import Reading, read_number

point = st.tuples(st.floats(0, 839), st.floats(0, 279))
stroke = st.lists(point, min_size=1, max_size=12)


@pytest.fixture(scope="module")
def predictor():
    return load_bundled()


def _drawn(strokes: list[list[tuple[float, float]]], pen: int) -> np.ndarray:
    image = Image.new("L", (840, 280), 255)
    draw = ImageDraw.Draw(image)
    for points in strokes:
        if len(points) > 1:
            draw.line(points, fill=0, width=pen, joint="curve")
        for x, y in points[:1] + points[-1:]:
            draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=0)
    return np.asarray(image)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(strokes=st.lists(stroke, min_size=1, max_size=8), pen=st.integers(1, 40), with_strokes=st.booleans())
def test_random_stroke_drawings_are_read_without_exception(predictor, strokes, pen, with_strokes) -> None:
    image = _drawn(strokes, pen)
    given_strokes = [np.asarray(s, np.float64) for s in strokes] if with_strokes else None
    reading = read_number(predictor, image, strokes=given_strokes)
    assert isinstance(reading, Reading)
    for digit in reading.digits:
        x, y, w, h = digit.box
        assert 0 <= x <= 840 and 0 <= y <= 280 and w >= 0 and h >= 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(height=st.integers(1, 60), width=st.integers(1, 60), seed=st.integers(0, 2**16), density=st.floats(0, 1))
def test_noise_of_any_size_is_read_without_exception(predictor, height, width, seed, density) -> None:
    rng = np.random.default_rng(seed)
    image = np.where(rng.random((height, width)) < density, 0, 255).astype(np.uint8)
    assert isinstance(read_number(predictor, image), Reading)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((0, 0), np.uint8),
        np.full((1, 1), 0, np.uint8),
        np.full((1, 1), 255, np.uint8),
        np.full((280, 280), 0, np.uint8),
        np.pad(np.zeros((1, 1), np.uint8), 100, constant_values=255),
        np.full((10000, 20), 255, np.uint8),
        np.full((20, 10000), 255, np.uint8),
        np.where(np.random.default_rng(0).random((10000, 20)) < 0.3, 0, 255).astype(np.uint8),
        np.where(np.random.default_rng(1).random((20, 10000)) < 0.3, 0, 255).astype(np.uint8),
        np.random.default_rng(2).integers(0, 256, (300, 300)).astype(np.uint8),
    ],
    ids=[
        "empty",
        "1x1 ink",
        "1x1 paper",
        "all ink",
        "one dot",
        "10000x20",
        "20x10000",
        "10000x20 noise",
        "20x10000 noise",
        "grey noise",
    ],
)
def test_odd_images_are_read_without_exception(predictor, image) -> None:
    assert isinstance(read_number(predictor, image), Reading)


def test_a_tilted_figure_8_of_straight_strokes(predictor) -> None:
    points = [(60, 20), (20, 60), (70, 110), (20, 160), (60, 200), (100, 160), (50, 110), (100, 60), (60, 20)]
    tilted = [(x + 0.4 * (200 - y) + 300, y + 30) for x, y in points]
    for pen in (4, 10, 20):
        assert isinstance(read_number(predictor, _drawn([tilted], pen)), Reading)
