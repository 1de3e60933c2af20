"""A sequence reader for numbers whose digits touch or overlap: a small convolutional network over the
whole line of ink, trained with CTC loss on numbers composed from MNIST digits (tools/train_number_reader.py).

Cutting touching digits apart with straight or bent cuts reads quick handwriting poorly (the cut takes a
piece of the neighbour); reading the line as a sequence does not need the cut. :mod:`engine.reading` uses
it where a mark holds several digits; ``benchmarks/bench_reading.py`` measures both.

The line is prepared as single digits are (:mod:`engine.preprocess`): cropped to its ink, the stroke
brought to MNIST's width, and fitted to MNIST's 20 px digit height in a 28 px tall strip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine.errors import CheckpointError
from engine.preprocess import BOX, FIELD, STROKE_PAD, WORK, _resize, at_mnist_stroke, crop_to_ink
from engine.shipped import shipped

READER_FILE = shipped("models", "number-reader.pt")
BLANK = 10  # CTC's "no digit here" class
PAD = 4  # columns of paper left and right of the line
STRIDE = 2  # input columns per output frame
MAX_WIDTH = 2048  # strip columns read at most (about 80 digits)
MEAN, STD = 0.13, 0.31  # of MNIST's pixels, the input normalisation


class NumberNet(nn.Module):
    """(N, 1, 28, W) strip -> (N, 11, W / 2) per-frame logits: ten digits and CTC's blank."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 48, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d((2, 1)),
            nn.Conv2d(48, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d((7, 1)),
        )
        self.sequence = nn.Sequential(
            nn.Conv1d(64, 128, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(128, 128, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(128, BLANK + 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sequence(self.features(x).squeeze(2))


@dataclass(frozen=True)
class Strip:
    """A line of ink prepared for :class:`NumberNet`; ``scale`` and ``left``/``top`` map strip columns
    back to the ink map's pixels (``x = left + (column - PAD) / scale``)."""

    pixels: np.ndarray  # (28, W) float32 in [0, 1]
    scale: float
    left: int
    top: int
    height: int


def prepare_line(ink: np.ndarray) -> Strip | None:
    """The ink map's line as a 28 px tall strip with digits 20 px tall, or None when there is no ink."""
    if float(ink.max()) <= 0.0:
        return None
    crop, top, left = crop_to_ink(ink)
    h, w = crop.shape
    adjusted = at_mnist_stroke(crop, WORK, min(max(1, round(w * WORK / h)), MAX_WIDTH * WORK // BOX))
    if adjusted is None:
        return None
    work = adjusted[0][STROKE_PAD:-STROKE_PAD, STROKE_PAD:-STROKE_PAD]
    width = max(1, round(work.shape[1] * BOX / WORK))
    line = np.clip(_resize(work, BOX, width), 0.0, 1.0)
    strip = np.zeros((FIELD, width + 2 * PAD), np.float32)
    strip[(FIELD - BOX) // 2 : (FIELD - BOX) // 2 + BOX, PAD : PAD + width] = line
    return Strip(strip, width / w, left, top, h)


@dataclass(frozen=True)
class SequenceDigit:
    label: int
    probabilities: np.ndarray  # (10,) over the digits, at the frame where this digit is surest
    columns: tuple[int, int]  # strip columns [start, stop) of its frames


def decode(logits: torch.Tensor) -> list[SequenceDigit]:
    """Greedy CTC decoding of one strip's (11, T) logits: runs of one digit between blanks."""
    probabilities = torch.softmax(logits.float(), 0).numpy()
    best = probabilities.argmax(0)
    digits: list[SequenceDigit] = []
    start = 0
    for t in range(1, len(best) + 1):
        if t == len(best) or best[t] != best[start]:
            if best[start] != BLANK:
                frames = probabilities[:, start:t]
                peak = start + int(frames[best[start]].argmax())
                digit_probabilities = probabilities[:BLANK, peak] / max(float(probabilities[:BLANK, peak].sum()), 1e-9)
                digits.append(
                    SequenceDigit(
                        int(best[start]), digit_probabilities.astype(np.float32), (start * STRIDE, t * STRIDE)
                    )
                )
            start = t
    return digits


class NumberReader:
    """The trained :class:`NumberNet` on the CPU, ready to read strips."""

    def __init__(self, model: NumberNet) -> None:
        self.model = model.cpu().eval()

    @classmethod
    def load(cls, path: Path = READER_FILE) -> NumberReader:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, ValueError, EOFError) as exc:
            raise CheckpointError(f"{path}: the number reader cannot be read ({exc})") from exc
        model = NumberNet()
        expected = model.state_dict()
        if (
            not isinstance(state, dict)
            or set(state) != set(expected)
            or any(
                not isinstance(state[k], torch.Tensor)
                or state[k].shape != expected[k].shape
                or not torch.isfinite(state[k]).all()
                for k in expected
            )
        ):
            raise CheckpointError(f"{path}: not the number reader's weights")
        model.load_state_dict(state)
        return cls(model)

    @torch.inference_mode()
    def logits(self, strip: Strip) -> torch.Tensor:
        """The (11, T) per-frame logits of one strip."""
        x = (torch.from_numpy(strip.pixels[:, :MAX_WIDTH]).view(1, 1, FIELD, -1) - MEAN) / STD
        return self.model(x)[0]

    def read(self, strip: Strip) -> list[SequenceDigit]:
        return decode(self.logits(strip))

    @staticmethod
    def decode(logits: torch.Tensor) -> list[SequenceDigit]:
        return decode(logits)

    @staticmethod
    @torch.inference_mode()
    def log_likelihoods(logits: torch.Tensor, labellings: list[list[int]]) -> list[float]:
        """CTC's log-probability of each labelling (digits, left to right) given one strip's logits: the
        sum over every alignment of it to the frames (-inf where it has more digits than frames allow)."""
        frames = logits.shape[1]
        log_probabilities = logits.float().log_softmax(0).T.unsqueeze(1)  # (T, 1, 11)
        scores = []
        for labels in labellings:
            if not labels:
                scores.append(float(log_probabilities[:, 0, BLANK].sum()))
                continue
            loss = nn.functional.ctc_loss(
                log_probabilities,
                torch.tensor([labels]),
                torch.tensor([frames]),
                torch.tensor([len(labels)]),
                blank=BLANK,
                reduction="sum",
                zero_infinity=False,
            )
            scores.append(-float(loss))
        return scores


_shared: list[NumberReader | None] = []


def shared_reader() -> NumberReader | None:
    """The bundled reader, loaded once; None when the installation lacks it (numbers are then read by
    cutting alone)."""
    if not _shared:
        try:
            _shared.append(NumberReader.load())
        except CheckpointError:
            _shared.append(None)
    return _shared[0]
