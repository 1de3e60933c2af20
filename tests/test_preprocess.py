from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.inference import BUNDLED_MODEL, load_bundled
from engine.preprocess import FIELD, naive_resize, preprocess, stroke_width
from tests.drawn_digits import SHAPES, drawn_digits, render


def _centre_of_mass(pixels: np.ndarray) -> tuple[float, float]:
    ys, xs = np.mgrid[0:FIELD, 0:FIELD]
    return float((ys * pixels).sum() / pixels.sum()), float((xs * pixels).sum() / pixels.sum())


def test_small_off_centre_and_huge_digits_map_to_nearly_the_same_input() -> None:
    small = preprocess(render(SHAPES[2][0], box=60, left=10, top=200, pen=7)).pixels
    huge = preprocess(render(SHAPES[2][0], box=270, left=5, top=5, pen=30)).pixels
    assert np.abs(small - huge).mean() < 0.06
    for pixels in (small, huge):
        cy, cx = _centre_of_mass(pixels)
        assert abs(cy - 13.5) < 1 and abs(cx - 13.5) < 1
        rows = np.flatnonzero(pixels.max(1) > 0.1)
        assert 18 <= rows[-1] - rows[0] + 1 <= 22  # the longer side fills MNIST's 20 px box


def test_polarity_black_on_white_equals_white_on_black() -> None:
    drawing = render(SHAPES[7][1])
    a = preprocess(drawing).pixels
    b = preprocess(255 - drawing).pixels
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_rgb_rgba_and_pil_inputs_agree() -> None:
    drawing = render(SHAPES[3][0])
    reference = preprocess(drawing).pixels
    rgb = np.repeat(drawing[:, :, None], 3, axis=2)
    rgba = np.dstack([np.zeros_like(drawing)] * 3 + [255 - drawing])  # black ink, transparent paper
    for variant in (rgb, Image.fromarray(drawing), Image.fromarray(rgba, "RGBA")):
        np.testing.assert_allclose(preprocess(variant).pixels, reference, atol=0.02)


@pytest.mark.parametrize("size", [(280, 280), (50, 90), (1, 1), (0, 0)])
def test_blank_canvas_is_empty(size: tuple[int, int]) -> None:
    result = preprocess(np.full(size, 255, np.uint8))
    assert result.empty and result.pixels.shape == (FIELD, FIELD) and result.pixels.max() == 0


def test_a_few_specks_of_noise_are_empty() -> None:
    canvas = np.full((280, 280), 255, np.uint8)
    canvas[10, 10] = 0
    canvas[200, 150] = 40
    assert preprocess(canvas).empty


def test_noise_specks_do_not_shift_the_crop() -> None:
    clean = render(SHAPES[5][0])
    noisy = clean.copy()
    noisy[2:4, 2:4] = 0
    noisy[270:272, 250:252] = 0
    assert np.abs(preprocess(noisy).pixels - preprocess(clean).pixels).mean() < 0.01


def test_one_pixel_stroke_is_thickened_to_mnist_width() -> None:
    thin = preprocess(render(SHAPES[0][0], pen=1))
    normal = preprocess(render(SHAPES[0][0], pen=18))
    assert thin.stroke_width < normal.stroke_width
    assert (thin.pixels > 0.5).sum() >= 0.6 * (normal.pixels > 0.5).sum()
    assert stroke_width(np.kron(thin.pixels, np.ones((4, 4)))) > 6


def test_prepared_ink_changes_smoothly_with_the_pen_width() -> None:
    """A pen one size up must not flip the preparation: with a "thicken below 70 %" cut-off the ink of
    the 28x28 input jumped by up to 40 % between neighbouring pen sizes, and the canvas's anti-aliased
    strokes of a 1 were read as a 7 while the same strokes as an image were a 1."""
    worst = 0.0
    for shapes in SHAPES.values():
        for shape in shapes:
            ink = [float(preprocess(render(shape, pen=pen)).pixels.sum()) for pen in range(10, 31, 2)]
            worst = max(worst, max(abs(b - a) for a, b in zip(ink, ink[1:])) / float(np.mean(ink)))
    assert worst < 0.2


def test_very_thick_strokes_are_thinned_without_erasing() -> None:
    marker = preprocess(render(SHAPES[4][1], pen=55))
    normal = preprocess(render(SHAPES[4][1], pen=18))
    assert (marker.pixels > 0.5).sum() <= 1.3 * (normal.pixels > 0.5).sum()
    assert (marker.pixels > 0.5).sum() > 0.5 * (normal.pixels > 0.5).sum()


def test_naive_baseline_is_what_it_says() -> None:
    pixels = naive_resize(render(SHAPES[1][0]))
    assert pixels.shape == (FIELD, FIELD) and pixels.max() > 0.5


@pytest.mark.skipif(not BUNDLED_MODEL.exists(), reason="bundled model not built")
def test_bundled_model_recognises_hand_drawn_digits() -> None:
    predictor = load_bundled()
    samples = drawn_digits()
    assert len(samples) >= 30 and {label for label, _ in samples} == set(range(10))
    correct = 0
    for label, canvas in samples:
        prediction = predictor.predict(canvas)
        assert prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
        correct += prediction.label == label
    assert correct / len(samples) >= 0.9, f"{correct}/{len(samples)}"


@pytest.mark.skipif(not BUNDLED_MODEL.exists(), reason="bundled model not built")
def test_bundled_model_says_empty_for_a_blank_canvas_and_explains_saliency() -> None:
    predictor = load_bundled()
    blank = predictor.predict(np.full((280, 280), 255, np.uint8))
    assert blank.label is None and blank.probabilities.sum() == 0
    drawn = predictor.predict(render(SHAPES[8][1]))
    saliency = predictor.saliency(drawn.prepared)
    assert saliency.shape == (FIELD, FIELD) and saliency.max() == pytest.approx(1.0)
    assert saliency[drawn.prepared.pixels == 0].max() == 0  # gradient x input: only ink can matter
    assert all(p.grad is None for p in predictor.model.parameters())  # nothing kept for the weights
    np.testing.assert_array_equal(predictor.saliency(drawn.prepared), saliency)  # the same each time


def test_shapes_unlike_any_digit_are_told_apart_from_digits() -> None:
    from PIL import ImageDraw

    def drawing(draw) -> np.ndarray:
        image = Image.new("L", (280, 280), 255)
        draw(ImageDraw.Draw(image))
        return np.asarray(image)

    dash = drawing(lambda d: d.line([(40, 140), (240, 150)], fill=0, width=16))
    wave = drawing(lambda d: d.line([(40 + 10 * i, 140 + 40 * np.sin(i / 2)) for i in range(21)], fill=0, width=14))
    blob = drawing(lambda d: d.ellipse([80, 80, 200, 200], fill=0))
    assert preprocess(dash).unlike_digit() == "wider than any digit"
    assert preprocess(wave).unlike_digit() == "wider than any digit"
    assert preprocess(blob).unlike_digit() == "more ink than any digit"
    assert all(preprocess(image).unlike_digit() is None for _, image in drawn_digits())
    assert preprocess(np.zeros((28, 28), np.uint8)).unlike_digit() is None  # empty is empty, not "unlike"
