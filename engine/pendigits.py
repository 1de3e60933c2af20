"""Other writers' digits: the UCI pen-based digits (Alpaydin and Alimoglu, 1998; CC BY 4.0), drawn as a
person draws them on the canvas.

Each digit is a pen trajectory of 8 points resampled at equal arc length, pen-up moves included, with y
growing upward; x and y are each scaled to span 0-100, so the file keeps no digit's aspect ratio (a 1
spans as wide as it is tall; tests/test_pendigits.py checks the file does so). :func:`render` draws one as connected
segments with a round pen, at a size and place and with a pen width of the caller's choosing;
:func:`random_drawing` picks those the way people draw on a canvas, and, with ``distort``, also bends
the trajectory a little (slant, rotation, squash, wobble, smoothing) so that a model trained on renders
meets new writers' variations of the same shapes. ``tools/train_bundled_model.py`` trains on them and
``benchmarks/bench_people.py`` measures how the app reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from engine.errors import DataError

# the training split, where the project's shared data sits beside it (../shared/datasets/pendigits)
PENDIGITS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "pendigits" / "pendigits.tra"
POINTS = 8  # points per trajectory
SPAN = 100.0  # x and y of a trajectory each span 0..SPAN
SUPERSAMPLE = 3  # drawn this many times larger, then reduced: anti-aliased edges, as the canvas paints
MAX_FILE_BYTES = 16 * 1024 * 1024  # the training split is 0.4 MB


@dataclass(frozen=True)
class PenDigits:
    """``trajectories`` float32 (N, 8, 2): x right and y *down*, each spanning 0..100; ``labels`` int64 (N,)."""

    trajectories: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray) -> PenDigits:
        return PenDigits(self.trajectories[indices], self.labels[indices])


def read_pendigits(path: Path | str) -> PenDigits:
    """The digits of a UCI ``pendigits.tra``/``.tes`` file (17 comma-separated integers a line)."""
    path = Path(path).expanduser()
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise DataError(f"{path}: too large for a pendigits file ({path.stat().st_size} bytes)")
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read as a pendigits file ({exc})") from exc
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split(",")
        try:
            values = [int(field) for field in fields]
        except ValueError:
            raise DataError(f"{path}, line {number}: not 17 comma-separated integers") from None
        if len(values) != 2 * POINTS + 1:
            raise DataError(f"{path}, line {number}: {len(values)} values, expected {2 * POINTS + 1}")
        if not all(0 <= v <= SPAN for v in values[:-1]) or not 0 <= values[-1] <= 9:
            raise DataError(f"{path}, line {number}: a coordinate outside 0-100 or a label outside 0-9")
        rows.append(values)
    if not rows:
        raise DataError(f"{path}: holds no digits")
    table = np.asarray(rows, dtype=np.float32)
    trajectories = table[:, :-1].reshape(-1, POINTS, 2)
    trajectories[:, :, 1] = SPAN - trajectories[:, :, 1]  # y down, as images are
    return PenDigits(trajectories, table[:, -1].astype(np.int64))


def render(
    trajectory: np.ndarray,
    size: tuple[int, int],
    box: tuple[float, float, float, float],
    pen: float,
    into: np.ndarray | None = None,
) -> np.ndarray:
    """The trajectory (any number of points, x right, y down) drawn with a round pen ``pen`` pixels wide,
    scaled to fit ``box`` = (left, top, width, height) with its aspect ratio kept and centred there, on an
    image of ``size`` = (height, width); bright ink (uint8). ``into``: an image to draw over (the ink
    combined), for numbers."""
    height, width = size
    s = SUPERSAMPLE
    points = [(x * s, y * s) for x, y in placed(trajectory, box)]
    image = Image.new("L", (width * s, height * s), 0)
    draw = ImageDraw.Draw(image)
    radius = max(0.5, pen * s / 2)
    draw.line(points, fill=255, width=max(1, round(pen * s)), joint="curve")
    for x, y in points:  # round ends and joins, as a round pen leaves them
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    drawn = np.asarray(image.reduce(s))
    if into is not None:
        np.maximum(into, drawn, out=into)
        return into
    return drawn


def distorted(trajectory: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The trajectory as another writer might have drawn it: slanted, turned, squashed, wobbled, and
    sometimes smoothed into a curve through its points."""
    points = trajectory - trajectory.mean(0)
    angle = np.radians(rng.uniform(-12, 12))
    slant = rng.uniform(-0.3, 0.3)
    squash = np.exp(rng.uniform(-0.25, 0.25))
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    shear = np.array([[squash, slant], [0.0, 1.0]], np.float32)
    points = points @ (turn @ shear).T + rng.normal(0, 2.5, points.shape)
    if rng.random() < 0.5:
        points = _smooth(points)
    return (points - points.min(0)).astype(np.float32)


def _smooth(points: np.ndarray, per_segment: int = 6) -> np.ndarray:
    """A Catmull-Rom curve through the points: the trajectory as a mouse or pen would draw it round."""
    padded = np.vstack([points[:1], points, points[-1:]])
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None]
    curve = []
    for k in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[k - 1], padded[k], padded[k + 1], padded[k + 2]
        curve.append(
            0.5
            * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3)
        )
    return np.vstack([*curve, points[-1:]])


def random_drawing(
    trajectory: np.ndarray, rng: np.random.Generator, size: tuple[int, int] = (280, 280), distort: bool = False
) -> np.ndarray:
    """One digit drawn as a person draws on a canvas of ``size``: a random size (40-90 % of the canvas's
    height), place and pen width (4-16 % of the digit's height); dark ink on white (uint8), as the canvas
    hands its drawing to the model."""
    points = distorted(trajectory, rng) if distort else trajectory
    height, width = size
    digit = rng.uniform(0.4, 0.9) * height
    left = rng.uniform(0, max(0.0, width - digit))
    top = rng.uniform(0, max(0.0, height - digit))
    pen = rng.uniform(0.04, 0.16) * digit
    return 255 - render(points, size, (left, top, digit, digit), pen)


def split(digits: PenDigits, held_out: float = 0.2, seed: int = 0) -> tuple[PenDigits, PenDigits]:
    """Digits to train (and tune) on, and digits held out from both, the same for every tool. The file
    does not name its writers, so the held-out digits are a seeded random share of every writer's."""
    order = np.random.default_rng(seed).permutation(len(digits))
    count = int(round(held_out * len(digits)))
    return digits.subset(np.sort(order[count:])), digits.subset(np.sort(order[:count]))


def placed(trajectory: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The trajectory's points where :func:`render` draws them for ``box``, in the image's pixels."""
    left, top, box_width, box_height = box
    xs, ys = trajectory[:, 0], trajectory[:, 1]
    scale = min(box_width / max(float(np.ptp(xs)), 1e-6), box_height / max(float(np.ptp(ys)), 1e-6))
    x0 = left + (box_width - float(np.ptp(xs)) * scale) / 2 - float(xs.min()) * scale
    y0 = top + (box_height - float(np.ptp(ys)) * scale) / 2 - float(ys.min()) * scale
    return np.stack([x0 + xs * scale, y0 + ys * scale], axis=1)


def number_drawing(
    trajectories: list[np.ndarray], rng: np.random.Generator, gaps: tuple[float, float], height: int = 280
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Digits written side by side on a line as one person writes them (one pen, similar heights), with
    gaps between neighbours' ink drawn from ``gaps`` per digit height (negative: their columns overlap).
    Dark ink on white (uint8, ``height`` tall, as wide as needed), and each digit's stroke as drawn there
    ((n, 2) points in its pixels, as the canvas hands its strokes to the reader)."""
    size = rng.uniform(0.55, 0.75) * height
    pen = rng.uniform(0.04, 0.12) * size
    boxes, x = [], pen
    for k, trajectory in enumerate(trajectories):
        h = size * rng.uniform(0.9, 1.1)
        aspect = max(float(np.ptp(trajectory[:, 0])), 1.0) / max(float(np.ptp(trajectory[:, 1])), 1.0)
        w = h * min(aspect, 1.5)  # as tall as its neighbours, as wide as its shape makes it
        top = (height - h) / 2 + rng.uniform(-0.06, 0.06) * size
        boxes.append((x, top, w, h))
        x += w + (rng.uniform(*gaps) * size if k + 1 < len(trajectories) else 0)
    ink = np.zeros((height, int(np.ceil(x + pen))), np.uint8)
    for trajectory, box in zip(trajectories, boxes, strict=True):
        render(trajectory, ink.shape, box, pen, into=ink)
    return 255 - ink, [placed(t, box) for t, box in zip(trajectories, boxes, strict=True)]
