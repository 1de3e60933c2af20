"""Hand-written strokes of digits, rendered the way a mouse draws them on the app's canvas.

Each shape is a list of strokes; a stroke is a polyline in a unit box (x right, y down). They were written
by hand, two or three shapes per digit in the ways people commonly write it, and every shape is rendered
at several sizes and places on a 280x280 white canvas with a round dark pen. The tests use them to check
that preprocessing plus the bundled model recognise drawings, not just MNIST.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

Stroke = list[tuple[float, float]]


def _ellipse(
    cx: float, cy: float, rx: float, ry: float, start: float = -90, sweep: float = 360, points: int = 28
) -> Stroke:
    return [
        (
            cx + rx * math.cos(math.radians(start + sweep * i / points)),
            cy + ry * math.sin(math.radians(start + sweep * i / points)),
        )
        for i in range(points + 1)
    ]


SHAPES: dict[int, list[list[Stroke]]] = {
    0: [
        [_ellipse(0.5, 0.5, 0.3, 0.45)],
        [
            [
                (0.55, 0.05),
                (0.32, 0.15),
                (0.2, 0.5),
                (0.3, 0.88),
                (0.55, 0.95),
                (0.75, 0.72),
                (0.8, 0.32),
                (0.66, 0.08),
                (0.5, 0.07),
            ]
        ],
        [_ellipse(0.5, 0.5, 0.36, 0.42, start=-100, sweep=350)],
    ],
    1: [
        [[(0.5, 0.05), (0.5, 0.95)]],
        [[(0.32, 0.22), (0.56, 0.05), (0.56, 0.95)]],
        [[(0.62, 0.05), (0.42, 0.95)]],
    ],
    2: [
        [[(0.2, 0.25), (0.35, 0.08), (0.6, 0.05), (0.78, 0.2), (0.75, 0.4), (0.2, 0.92), (0.82, 0.92)]],
        [
            [
                (0.22, 0.3),
                (0.3, 0.12),
                (0.5, 0.05),
                (0.7, 0.12),
                (0.75, 0.3),
                (0.6, 0.5),
                (0.4, 0.7),
                (0.2, 0.93),
                (0.8, 0.93),
            ]
        ],
        [[(0.25, 0.2), (0.5, 0.05), (0.72, 0.18), (0.68, 0.42), (0.3, 0.8), (0.22, 0.92), (0.45, 0.85), (0.82, 0.9)]],
    ],
    3: [
        [
            [
                (0.2, 0.1),
                (0.5, 0.03),
                (0.75, 0.15),
                (0.7, 0.35),
                (0.45, 0.47),
                (0.75, 0.58),
                (0.8, 0.8),
                (0.55, 0.96),
                (0.2, 0.88),
            ]
        ],
        [
            [
                (0.25, 0.15),
                (0.45, 0.05),
                (0.7, 0.1),
                (0.72, 0.3),
                (0.5, 0.45),
                (0.4, 0.47),
                (0.55, 0.5),
                (0.75, 0.62),
                (0.75, 0.85),
                (0.5, 0.95),
                (0.25, 0.85),
            ]
        ],
        [[(0.2, 0.08), (0.75, 0.08), (0.45, 0.42), (0.7, 0.52), (0.8, 0.75), (0.6, 0.93), (0.35, 0.95), (0.2, 0.85)]],
    ],
    4: [
        [[(0.6, 0.05), (0.15, 0.65), (0.85, 0.65)], [(0.62, 0.3), (0.62, 0.95)]],
        [[(0.25, 0.05), (0.2, 0.55), (0.8, 0.55)], [(0.7, 0.05), (0.7, 0.95)]],
        [[(0.3, 0.05), (0.22, 0.5), (0.35, 0.55), (0.85, 0.52)], [(0.68, 0.2), (0.66, 0.95)]],
    ],
    5: [
        [[(0.75, 0.05), (0.3, 0.05), (0.25, 0.45), (0.5, 0.4), (0.75, 0.5), (0.78, 0.75), (0.55, 0.95), (0.2, 0.88)]],
        [
            [(0.3, 0.05), (0.25, 0.45), (0.55, 0.4), (0.75, 0.55), (0.75, 0.8), (0.5, 0.95), (0.22, 0.85)],
            [(0.3, 0.05), (0.78, 0.05)],
        ],
        [
            [
                (0.32, 0.06),
                (0.28, 0.42),
                (0.45, 0.36),
                (0.68, 0.42),
                (0.8, 0.62),
                (0.72, 0.86),
                (0.5, 0.96),
                (0.25, 0.9),
            ],
            [(0.32, 0.06), (0.72, 0.04)],
        ],
    ],
    6: [
        [
            [
                (0.7, 0.05),
                (0.4, 0.25),
                (0.25, 0.6),
                (0.3, 0.88),
                (0.5, 0.95),
                (0.72, 0.85),
                (0.75, 0.65),
                (0.55, 0.52),
                (0.35, 0.58),
                (0.27, 0.7),
            ]
        ],
        [
            [
                (0.65, 0.03),
                (0.45, 0.2),
                (0.3, 0.45),
                (0.25, 0.7),
                (0.35, 0.92),
                (0.6, 0.95),
                (0.75, 0.78),
                (0.65, 0.58),
                (0.45, 0.55),
                (0.3, 0.65),
            ]
        ],
        [[(0.6, 0.05), (0.35, 0.35), (0.28, 0.65)], _ellipse(0.5, 0.74, 0.22, 0.2, start=180)],
    ],
    7: [
        [[(0.2, 0.08), (0.8, 0.08), (0.45, 0.95)]],
        [[(0.2, 0.1), (0.8, 0.1), (0.4, 0.95)], [(0.35, 0.5), (0.75, 0.5)]],
        [[(0.18, 0.2), (0.25, 0.08), (0.82, 0.08), (0.6, 0.5), (0.5, 0.95)]],
    ],
    8: [
        [
            [
                (0.7, 0.15),
                (0.5, 0.05),
                (0.3, 0.15),
                (0.32, 0.35),
                (0.5, 0.47),
                (0.72, 0.6),
                (0.75, 0.82),
                (0.5, 0.95),
                (0.25, 0.82),
                (0.3, 0.6),
                (0.5, 0.47),
                (0.68, 0.35),
                (0.7, 0.15),
            ]
        ],
        [_ellipse(0.5, 0.26, 0.2, 0.21), _ellipse(0.5, 0.71, 0.26, 0.24)],
        [
            [
                (0.65, 0.1),
                (0.45, 0.04),
                (0.28, 0.18),
                (0.4, 0.38),
                (0.68, 0.58),
                (0.7, 0.85),
                (0.45, 0.96),
                (0.27, 0.8),
                (0.4, 0.55),
                (0.65, 0.35),
                (0.68, 0.15),
            ]
        ],
    ],
    9: [
        [
            [
                (0.72, 0.3),
                (0.6, 0.08),
                (0.4, 0.07),
                (0.27, 0.25),
                (0.35, 0.45),
                (0.55, 0.47),
                (0.72, 0.3),
                (0.7, 0.6),
                (0.62, 0.95),
            ]
        ],
        [_ellipse(0.48, 0.28, 0.22, 0.22, start=0), [(0.7, 0.28), (0.7, 0.95)]],
        [
            [
                (0.7, 0.2),
                (0.5, 0.05),
                (0.3, 0.15),
                (0.3, 0.38),
                (0.5, 0.45),
                (0.7, 0.3),
                (0.68, 0.15),
                (0.62, 0.55),
                (0.5, 0.95),
            ]
        ],
    ],
}

# (box size, left, top, pen width) in canvas pixels: large and centred, small and off-centre, mid-size low
PLACEMENTS = [(200, 40, 40, 18), (90, 20, 150, 12), (140, 120, 20, 22)]


def render(
    strokes: list[Stroke],
    size: int = 280,
    box: int = 200,
    left: int = 40,
    top: int = 40,
    pen: int = 18,
    aspect: float = 0.75,
) -> np.ndarray:
    """Dark round-pen strokes on a white canvas, as the app's canvas would hold them (uint8, HxW)."""
    image = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(image)
    width = box * aspect
    offset = left + (box - width) / 2
    for stroke in strokes:
        points = [(offset + x * width, top + y * box) for x, y in stroke]
        draw.line(points, fill=0, width=pen, joint="curve")
        r = pen / 2
        for x, y in (points[0], points[-1]):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=0)
    return np.asarray(image)


def drawn_digits() -> list[tuple[int, np.ndarray]]:
    """Every shape of every digit at every placement: (label, 280x280 uint8 canvas)."""
    samples = []
    for label, shapes in SHAPES.items():
        for shape in shapes:
            for box, left, top, pen in PLACEMENTS:
                samples.append((label, render(shape, box=box, left=left, top=top, pen=pen)))
    return samples
