"""Reading a written number: find the digits in a drawing or photo and read them left to right.

The ink (:func:`engine.preprocess.ink_map`) is split into connected components; specks are dropped, and
a component wider than a digit (digits that touch) is also cut at the thinnest columns of its ink. These
pieces, in left-to-right order, are grouped into digits by dynamic programming: every run of up to
``MAX_PIECES`` neighbouring pieces that could be one digit (not too wide, no wide gap) is prepared
exactly as a single digit is (:func:`engine.preprocess.prepare_ink`, only that run's own ink, so the tail
of a 7 reaching under its neighbour is not in the neighbour's input) and all of them are classified in
one batch; the grouping with the most probable reading wins, where a piece much shorter than the line
(the bar of a 5, a 7's crossbar, a dot of a broken stroke) standing alone costs dearly. So strokes of one
digit that do not touch are grouped when the classifier reads them better together, and neighbours whose
columns overlap are kept apart when it reads them better apart. ``benchmarks/bench_reading.py`` measures
this on numbers composed from MNIST digits and from drawn digits.

Limits: one line of digits, written left to right; a digit must be at least ``SPECK`` of the line's
height; digits that touch are cut with straight vertical cuts; more than ``MAX_MARKS`` marks (a photo of
text) are not read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from engine.inference import Prediction, Predictor
from engine.number_reader import PAD, SequenceDigit, Strip, prepare_line, shared_reader
from engine.preprocess import _resize, ink_of, prepare_ink, stroke_width

DIGITS = tuple(map(str, range(10)))  # the number reader reads these classes only
MAX_SIDE = 1200  # larger images are read at this size (the cut-outs are 28x28 anyway)
LINE = 96  # lines of digits taller than this are read at this height
MAX_MARKS = 60  # more components than this is text or a texture, not a number
MAX_PIECES = 4  # at most this many pieces make one digit
SPECK = 0.12  # a mark shorter and narrower than this fraction of the line's height is noise
WIDEST = 1.5  # a digit is at most this wide per line height (MNIST: 99.9 % below 1.67 of its own height)
CUT_SPACING = 0.15  # cuts through one mark are at least this far apart per line height
CUT_REACH = 0.12  # a cut bends at most this far from its column per line height
TOUCHING = 0.6  # a component wider than this per line height may hold several digits: cut it too
SURE_CUT = 0.95  # digits apart and all surer than this are not read again by the line reader
SURE_COUNT = 0.5  # the line reader's count is taken when its least sure digit is surer than this
FLAT = 3.0  # ...unless it is less than this many stroke widths tall: a dash, not digits
WIDEST_GAP = 0.08  # pieces of one digit are never further apart than this per line height
SHORT = 0.5  # a group shorter than this per line height is a fragment, not a digit
FRAGMENT_COST = 6.0  # log-probability charged for a fragment standing as a digit
GAP_COST = 10.0  # charged per line height of empty columns inside one digit
WIDE_COST = 4.0  # charged per line height of a digit's width beyond 1.4 typical digit widths
UNLIKE_COST = 0.3  # charged per unit of logit below the usual winning logit among the candidates
TYPICAL_WIDTH = 0.6  # a digit's width per line height where no digit stands apart to measure it on
CUT_COST = 0.25  # charged per stroke crossed by a cut that separates two digits (touching digits meet at one)


@dataclass(frozen=True)
class DigitRead:
    """One digit of a reading; ``box`` is ``(x, y, width, height)`` in the image's pixels; ``ink`` is the
    digit's own ink (bright, neighbours left out) where it was cut out of a number, None for a lone digit."""

    prediction: Prediction
    box: tuple[int, int, int, int]
    ink: np.ndarray | None = None


@dataclass(frozen=True)
class Reading:
    """The digits found, left to right. ``doubt`` says why the whole reading is not to be trusted."""

    digits: tuple[DigitRead, ...]
    doubt: str | None = None

    @property
    def text(self) -> str:
        return "".join(str(d.prediction.label) for d in self.digits if d.prediction.label is not None)

    def label_text(self, class_names: tuple[str, ...]) -> str:
        return "".join(class_names[d.prediction.label] for d in self.digits if d.prediction.label is not None)


@dataclass(frozen=True)
class _Piece:
    """Ink of one mark, or of one part of a mark cut apart, in its tight box of the (scaled) image."""

    top: int
    left: int
    mask: np.ndarray  # bool
    crossed: float = 0.0  # strokes the cut on its left goes through (0: no cut there)

    @property
    def bottom(self) -> int:
        return self.top + self.mask.shape[0]

    @property
    def right(self) -> int:
        return self.left + self.mask.shape[1]

    @property
    def centre(self) -> float:
        return self.left + float(np.flatnonzero(self.mask.any(0)).mean())


def read_number(predictor: Predictor, image: Any) -> Reading:
    """The digits of ``image`` (numpy array or PIL image, any size) left to right, with their boxes."""
    ink = ink_of(image)
    if ink is None:
        return Reading(())
    full_ink = ink  # what preprocess() would prepare: a lone digit is read from it, as predict() reads it
    rows = np.flatnonzero(ink.max(1) > 0)
    # digits are prepared at 80 px (preprocess.WORK): a line taller than LINE, or an image larger than
    # MAX_SIDE, is read smaller, since more pixels only cost time
    scale = min(1.0, MAX_SIDE / max(ink.shape), LINE / (rows[-1] - rows[0] + 1))
    if scale < 1.0:
        ink = _resize(ink, max(1, round(ink.shape[0] * scale)), max(1, round(ink.shape[1] * scale)))
    components, boxes = _components(ink)
    if not boxes:
        return Reading(())
    line = max(bottom - top for top, bottom, _, _, _ in boxes)
    marks = [b for b in boxes if max(b[1] - b[0], b[3] - b[2]) >= SPECK * line]
    if len(marks) > MAX_MARKS:
        return Reading((), f"{len(marks)} separate marks: too many to be a number")
    pieces = _pieces(components, marks, line)

    def whole() -> Reading:  # one digit: read exactly as a single image is, as predict() reads it
        return Reading((DigitRead(predictor.predict_prepared(prepare_ink(full_ink)), _box(pieces, scale)),))

    if len(pieces) == 1:  # one mark, as narrow as a digit
        return whole()
    groups = _candidate_groups(pieces, line)
    inks = [_group_ink(ink, pieces[i:j]) for i, j in groups]
    prepared = [prepare_ink(own) for own in inks]
    predictions = predictor.predict_batch(prepared)
    chosen = _best_grouping(pieces, groups, predictions, line)
    if len(chosen) == 1:
        cut = whole()
    else:
        index = {g: k for k, g in enumerate(groups)}
        cut = Reading(tuple(DigitRead(predictions[index[g]], _box(pieces[g[0]:g[1]], scale), inks[index[g]])
                            for g in chosen))
    if not any(p.crossed for p in pieces) and min(d.prediction.confidence for d in cut.digits) > SURE_CUT:
        return cut  # every digit stands apart and is read surely: the line reader would not change it
    reader = shared_reader() if predictor.class_names == DIGITS else None
    strip = prepare_line(ink) if reader is not None else None
    found = reader.read(strip) if strip is not None else []
    if not found or len(found) == len(cut.digits) == 1:
        return cut
    if len(found) != len(cut.digits):
        # The two count differently: the line reader's count wins when it is fairly sure of every digit
        # (where digits touch it counts far better; bench_reading.py), the marks' count otherwise.
        sure = min(float(d.probabilities.max()) for d in found) > SURE_COUNT
        return (_sequence_reading(found, strip, ink, scale) or cut) if sure else cut
    return Reading(tuple(_agree(a, b) for a, b in zip(cut.digits, found, strict=True)))


def _agree(cut: DigitRead, read: SequenceDigit) -> DigitRead:
    """One digit as both readers see it: their probabilities averaged, the cut-out's box and input."""
    probabilities = ((cut.prediction.probabilities + read.probabilities) / 2).astype(np.float32)
    prediction = Prediction(int(probabilities.argmax()), probabilities, cut.prediction.prepared,
                            cut.prediction.top_logit)
    return DigitRead(prediction, cut.box, cut.ink)


def _sequence_reading(found: list[SequenceDigit], strip: Strip, ink: np.ndarray, scale: float) -> Reading | None:
    """The line reader's digits; each digit's box and 28x28 input are the ink between the midpoints to
    its neighbours (the reader places digits, it does not outline them)."""
    centres = [strip.left + ((d.columns[0] + d.columns[1]) / 2 - PAD) / strip.scale for d in found]
    edges = [0, *(round((a + b) / 2) for a, b in zip(centres, centres[1:], strict=False)), ink.shape[1]]
    digits = []
    for digit, a, b in zip(found, edges, edges[1:], strict=False):
        part = ink[:, a:b]
        rows, cols = np.flatnonzero(part.max(1) > 0), np.flatnonzero(part.max(0) > 0)
        if not len(rows):
            return None
        own = part[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        box = _image_box(a + cols[0], int(rows[0]), a + cols[-1] + 1, int(rows[-1]) + 1, scale)
        digits.append(DigitRead(Prediction(digit.label, digit.probabilities, prepare_ink(own)), box, own))
    return Reading(tuple(digits))


def _components(ink: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int, int, int]]]:
    """The 8-connected marks of ink: the label map and each mark's (top, bottom, left, right, label)."""
    components, _ = ndimage.label(ink > 0, structure=np.ones((3, 3), bool))
    slices = ndimage.find_objects(components)
    return components, [(s[0].start, s[0].stop, s[1].start, s[1].stop, k + 1)
                        for k, s in enumerate(slices) if s is not None]


def _pieces(components: np.ndarray, marks: list[tuple[int, int, int, int, int]], line: int) -> list[_Piece]:
    """Marks left to right; a mark wider than a digit is also cut where touching digits likely meet."""
    pieces: list[_Piece] = []
    for top, bottom, left, right, label in marks:
        mask = components[top:bottom, left:right] == label
        wide = right - left > TOUCHING * line and bottom - top >= FLAT * stroke_width(mask.astype(np.float32))
        parts = _split(mask, line) if wide else [(mask, 0.0)]
        for part, crossed in parts:
            rows, cols = np.flatnonzero(part.any(1)), np.flatnonzero(part.any(0))
            if len(rows):
                pieces.append(_Piece(top + int(rows[0]), left + int(cols[0]),
                                     part[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], crossed))
    return sorted(pieces, key=lambda p: p.centre)


def _split(mask: np.ndarray, line: int) -> list[tuple[np.ndarray, float]]:
    """The mark cut into parts along top-to-bottom paths through the least ink, near its thinnest
    columns (a path may bend, so neighbours whose columns overlap are cut apart); each part with the
    number of strokes the cut on its left crossed."""
    h, w = mask.shape
    smooth = max(3, int(0.08 * line) | 1)
    profile = np.convolve(mask.sum(0).astype(np.float32), np.ones(smooth, np.float32) / smooth, mode="same")
    margin, spacing = max(1, int(0.15 * line)), max(2, int(CUT_SPACING * line))
    valleys = [x for x in range(margin, w - margin)
               if profile[x] <= profile[max(0, x - spacing // 2):x + spacing // 2 + 1].min()]
    centres: list[int] = []
    for column in sorted(valleys, key=lambda x: profile[x]):
        if all(abs(column - c) >= spacing for c in centres):
            centres.append(column)
    stroke = max(1.0, stroke_width(mask.astype(np.float32)))
    columns = np.arange(w)[None, :]
    parts, previous, previous_crossed = [], np.zeros(h, int), 0.0
    for centre in sorted(centres):
        path = np.maximum(_cut_path(mask, centre, int(CUT_REACH * line)), previous)  # cuts never cross
        parts.append((mask & (columns >= previous[:, None]) & (columns < path[:, None]), previous_crossed))
        previous, previous_crossed = path, float(mask[np.arange(h), np.clip(path, 0, w - 1)].sum()) / stroke
    parts.append((mask & (columns >= previous[:, None]), previous_crossed))
    return parts


def _cut_path(mask: np.ndarray, centre: int, radius: int) -> np.ndarray:
    """For each row, the column where a cut near ``centre`` passes: the 8-connected top-to-bottom path
    within ``radius`` of ``centre`` that crosses the least ink (found at about 40 rows, then scaled)."""
    h, w = mask.shape
    step = max(1, h // 40)
    lo, hi = max(0, centre - radius), min(w, centre + radius + 1)
    window = mask[::step, lo:hi].astype(np.float32) * step
    rows, width = window.shape
    total = window[0] + 0.01 * np.abs(np.arange(lo, hi) - centre)  # straight down the centre when free
    back = np.zeros((rows, width), np.int64)
    for y in range(1, rows):
        choices = np.stack([np.r_[np.inf, total[:-1]] + 0.1, total, np.r_[total[1:], np.inf] + 0.1])
        back[y] = choices.argmin(0) - 1
        total = choices[back[y] + 1, np.arange(width)] + window[y]
    column = int(total.argmin())
    path = np.empty(rows, np.int64)
    for y in range(rows - 1, -1, -1):
        path[y] = column
        column += back[y, column]
    return np.repeat(path + lo, step)[:h] if rows * step >= h else np.r_[np.repeat(path + lo, step),
                                                                       np.full(h - rows * step, path[-1] + lo)]


def _candidate_groups(pieces: list[_Piece], line: int) -> list[tuple[int, int]]:
    """Runs ``[i, j)`` of neighbouring pieces that could be one digit."""
    groups = []
    for i in range(len(pieces)):
        left, right = pieces[i].left, pieces[i].right
        groups.append((i, i + 1))
        for j in range(i + 1, min(i + MAX_PIECES, len(pieces))):
            if pieces[j].left - right > WIDEST_GAP * line:
                break
            left, right = min(left, pieces[j].left), max(right, pieces[j].right)
            if right - left > WIDEST * line:
                break
            groups.append((i, j + 1))
    return groups


def _group_ink(ink: np.ndarray, pieces: list[_Piece]) -> np.ndarray:
    """The group's own ink in its bounding box (other marks in the box left out)."""
    top, bottom = min(p.top for p in pieces), max(p.bottom for p in pieces)
    left, right = min(p.left for p in pieces), max(p.right for p in pieces)
    keep = np.zeros((bottom - top, right - left), bool)
    for p in pieces:
        keep[p.top - top:p.bottom - top, p.left - left:p.right - left] |= p.mask
    return np.where(keep, ink[top:bottom, left:right], 0.0).astype(np.float32)


def _best_grouping(pieces: list[_Piece], groups: list[tuple[int, int]], predictions: list[Prediction],
                   line: int) -> list[tuple[int, int]]:
    """The split of the pieces into digits with the highest score (log-probabilities and shape costs)."""
    whole = [p.right - p.left for k, p in enumerate(pieces) if p.bottom - p.top >= 0.6 * line
             and p.crossed == 0 and (k + 1 == len(pieces) or pieces[k + 1].crossed == 0)]
    typical = float(np.median(whole)) if whole else TYPICAL_WIDTH * line
    usual = float(np.percentile([p.top_logit for p in predictions], 75))  # how sure this model is of a digit
    score = {}
    for (i, j), prediction in zip(groups, predictions, strict=True):
        height = max(p.bottom for p in pieces[i:j]) - min(p.top for p in pieces[i:j])
        ordered = sorted(pieces[i:j], key=lambda p: p.left)
        gaps, right = 0, ordered[0].right
        for piece in ordered[1:]:
            gaps, right = gaps + max(0, piece.left - right), max(right, piece.right)
        width = right - ordered[0].left
        cost = ((FRAGMENT_COST if height < SHORT * line else 0.0) + GAP_COST * gaps / line
                + WIDE_COST * max(0.0, width - 1.4 * typical) / line)
        cost += CUT_COST * pieces[i].crossed  # a digit that starts at a cut through this many strokes
        cost += UNLIKE_COST * max(0.0, usual - prediction.top_logit)
        score[(i, j)] = float(np.log(max(prediction.confidence, 1e-6))) - cost
    best = [0.0] + [-np.inf] * len(pieces)
    back = [0] * (len(pieces) + 1)
    for (i, j) in sorted(groups, key=lambda g: g[1]):
        if best[i] + score[(i, j)] > best[j]:
            best[j], back[j] = best[i] + score[(i, j)], i
    chosen, end = [], len(pieces)
    while end > 0:
        chosen.append((back[end], end))
        end = back[end]
    return chosen[::-1]


def _box(pieces: list[_Piece], scale: float) -> tuple[int, int, int, int]:
    return _image_box(min(p.left for p in pieces), min(p.top for p in pieces), max(p.right for p in pieces),
                      max(p.bottom for p in pieces), scale)


def _image_box(left: int, top: int, right: int, bottom: int, scale: float) -> tuple[int, int, int, int]:
    """``(x, y, width, height)`` in the image's pixels of a box in the ink map read at ``scale``."""
    return (int(left / scale), int(top / scale), int(np.ceil((right - left) / scale)),
            int(np.ceil((bottom - top) / scale)))

