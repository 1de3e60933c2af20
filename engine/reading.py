"""Reading a written number: find the digits in a drawing or photo and read them left to right.

One pass through the stages, each visited once but 3-4, which marks that may hold touching digits visit
again (whether to cut a mark depends on how the classifier reads it whole):

1. **ink**: the image's ink map (:func:`engine.preprocess.ink_of`), scaled once so the line is at most
   ``LINE`` pixels tall;
2. **marks**: the canvas's strokes grouped into digits by their horizontal extent and order, as pen-input
   systems do (:func:`_stroke_marks`), or, for an image, its 8-connected components; specks dropped;
3. **candidate digits**: every run of neighbouring marks that could be one digit, each prepared exactly
   as a single digit is (:func:`engine.preprocess.prepare_ink`, its own ink only);
4. **one batch classified** (:class:`_Candidates`, each candidate once); then a mark wider than a digit
   usually is, or wide and unsure read whole (:func:`_may_hold_several`), is cut where touching digits
   likely meet (:func:`_split`), and its parts' runs go through 3-4; the mark whole stays a candidate;
5. **the decision** (:func:`_scores`, :func:`_best_grouping`): the grouping with the highest score, where
   a cut through a connected mark must beat the mark read whole by ``POLICY.split_margin``. Where a mark
   was cut and the line reader (:mod:`engine.number_reader`) counts its digits differently, the two counts
   are weighed by likelihood under both models (:func:`_weigh_counts`).

The policy (:class:`ReadingPolicy`) names what each constant measures; ``tools/calibrate_reading.py``
measures its false-split rate on MNIST's test digits and on other writers' pen digits, and
``benchmarks/bench_reading.py`` and ``benchmarks/bench_people.py`` how numbers are read.

Limits: one line of digits, written left to right; a digit must be at least ``SPECK`` of the line's
height; more than ``MAX_MARKS`` marks (a photo of text) are not read, and more than ``MAX_DIGITS`` digits
are said to be no plausible number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from engine.inference import Prediction, Predictor
from engine.number_reader import MAX_WIDTH, NumberReader, SequenceDigit, prepare_line, shared_reader
from engine.preprocess import _resize, ink_of, prepare_ink, stroke_width

DIGITS = tuple(map(str, range(10)))  # the number reader reads these classes only
MAX_SIDE = 1200  # larger images are read at this size (the cut-outs are 28x28 anyway)
LINE = 96  # lines of digits taller than this are read at this height
MAX_MARKS = 60  # more components than this is text or a texture, not a number
MAX_DIGITS = 40  # a reading of more digits than this is said to be no plausible number (a zigzag, a texture)
MAX_PIECES = 4  # at most this many pieces make one digit
SPECK = 0.12  # a mark shorter and narrower than this fraction of the line's height is noise
CUT_SPACING = 0.15  # cuts through one mark are at least this far apart per line height
CUT_REACH = 0.12  # a cut bends at most this far from its column per line height
FLAT = 3.0  # a mark less than this many stroke widths tall is a dash, never cut


@dataclass(frozen=True)
class ReadingPolicy:
    """When ink is one digit or several. Widths and gaps are per line height; scores are natural logs of
    probabilities. Calibrated by tools/calibrate_reading.py (docs/architecture.md, Reading numbers)."""

    widest_digit: float = 1.25  # a mark wider than this is wider than a digit usually is: it is also cut
    may_hold_several: float = 0.6  # ...and, in an image, one wider than this that the classifier is unsure of
    sure_whole: float = 0.99  # unsure: the whole mark's top probability is below this
    split_margin: float = 4.0  # a cut through a connected mark must beat the whole mark by this much
    cut_cost: float = 0.25  # and pays this per stroke its cut crosses beyond one (touching digits meet at one)
    widest: float = 1.5  # a group of pieces wider than this is not one digit (a whole mark always may be)
    widest_gap: float = 0.08  # pieces of one digit are never further apart than this
    short: float = 0.5  # a group shorter than this is a fragment, not a digit
    fragment_cost: float = 6.0  # charged for a fragment standing as a digit (the bar of a 5, a dot)
    gap_cost: float = 10.0  # charged per line height of empty columns inside one digit
    wide_cost: float = 4.0  # per line height of a digit's width beyond 1.4 typical digit widths
    typical_width: float = 0.6  # a digit's width where no digit stands apart to measure it on
    unlike_cost: float = 0.3  # per unit of logit below the usual winning logit among the candidates
    stroke_overlap: float = 0.5  # strokes overlapping by this share of the narrower's width are one digit
    reader_weight: float = 1.0  # the line reader's log-likelihoods count this much against the classifier's


POLICY = ReadingPolicy()


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
    mark: int  # which mark it is (or is part of)
    part: int = -1  # which part of its mark, left to right; -1: the mark uncut
    crossed: float = 0.0  # strokes the cut on its left goes through; 0: no cut on its left

    @property
    def bottom(self) -> int:
        return self.top + self.mask.shape[0]

    @property
    def right(self) -> int:
        return self.left + self.mask.shape[1]

    @property
    def centre(self) -> float:
        return self.left + float(np.flatnonzero(self.mask.any(0)).mean())


Mark = tuple[int, int, np.ndarray]  # (top, left, bool mask in its tight box)
Strokes = Sequence[np.ndarray]  # each stroke's points, (n, 2) as (x, y) in the image's pixels, in drawing order
_Key = tuple[tuple[int, int], ...]  # a candidate digit: its pieces as (mark, part)


class _Candidates:
    """Candidate digits cut out, prepared and classified, each once; a lone mark is prepared from the
    whole image's ink, as predict() prepares it."""

    def __init__(self, predictor: Predictor, ink: np.ndarray, lone_ink: np.ndarray | None) -> None:
        self.predictor, self.ink, self.lone_ink = predictor, ink, lone_ink
        self.found: dict[_Key, tuple[Prediction, np.ndarray | None]] = {}
        self.parts: dict[int, int] = {}  # how many parts each cut mark has

    def key(self, pieces: list[_Piece]) -> _Key:
        """The pieces' identity; every part of a cut mark is the mark whole."""
        if len({p.mark for p in pieces}) == 1 and len(pieces) == self.parts.get(pieces[0].mark, 0):
            return ((pieces[0].mark, -1),)
        return tuple((p.mark, p.part) for p in pieces)

    def cut_into(self, pieces: list[_Piece]) -> None:
        self.parts = {m: sum(p.mark == m for p in pieces) for m in {p.mark for p in pieces if p.part >= 0}}

    def classify(self, pieces: list[_Piece], groups: list[tuple[int, int]]) -> None:
        """Classify, in one batch, the groups of ``pieces`` not classified before."""
        unique = {self.key(pieces[i:j]): pieces[i:j] for i, j in groups}
        new = [(key, members) for key, members in unique.items() if key not in self.found]
        inks = [
            None if key == ((0, -1),) and self.lone_ink is not None else _group_ink(self.ink, members)
            for key, members in new
        ]
        prepared = [prepare_ink(cast(np.ndarray, self.lone_ink) if own is None else own) for own in inks]
        for (key, _), own, prediction in zip(new, inks, self.predictor.predict_batch(prepared), strict=True):
            self.found[key] = (prediction, own)

    def prediction(self, pieces: list[_Piece]) -> Prediction:
        return self.found[self.key(pieces)][0]

    def digit(self, pieces: list[_Piece], scale: float) -> DigitRead:
        prediction, own = self.found[self.key(pieces)]
        return DigitRead(prediction, _box(pieces, scale), own)


def read_number(
    predictor: Predictor, image: Any, strokes: Strokes | None = None, policy: ReadingPolicy = POLICY
) -> Reading:
    """The digits of ``image`` (numpy array or PIL image, any size) left to right, with their boxes.
    ``strokes``: how the drawing was drawn (the canvas knows), which then decides what ink is one mark."""
    ink = ink_of(image)  # 1. the ink
    if ink is None:
        return Reading(())
    full_ink = ink  # what preprocess() would prepare: a lone digit is read from it, as predict() reads it
    rows = np.flatnonzero(ink.max(1) > 0)
    # digits are prepared at 80 px (preprocess.WORK): a taller line, or a larger image, only costs time
    scale = min(1.0, MAX_SIDE / max(ink.shape), LINE / (rows[-1] - rows[0] + 1))
    if scale < 1.0:
        ink = _resize(ink, max(1, round(ink.shape[0] * scale)), max(1, round(ink.shape[1] * scale)))
    found = _stroke_marks(ink, strokes, scale, policy) if strokes else _component_marks(ink)  # 2. marks
    if not found:
        return Reading(())
    line = max(mask.shape[0] for _, _, mask in found)
    marks = [m for m in found if max(m[2].shape) >= SPECK * line]
    if len(marks) > MAX_MARKS:
        return Reading((), f"{len(marks)} separate marks: too many to be a number")
    candidates = _Candidates(predictor, ink, full_ink if len(marks) == 1 else None)
    pieces = _pieces(marks, line, frozenset())  # 3. candidate digits: the marks as they are
    groups = _candidate_groups(pieces, line, policy, bool(strokes))
    candidates.classify(pieces, groups)  # 4. classified in one batch
    cut = set(
        k
        for k, mark in enumerate(marks)
        if _may_hold_several(
            mark, candidates.prediction([p for p in pieces if p.mark == k]), line, policy, by_strokes=bool(strokes)
        )
    )
    endless = {k for k in cut if marks[k][2].shape[1] > MAX_DIGITS * line}  # a zigzag or a scribble: not cut
    cut -= endless
    if cut:  # 3-4 again for the marks that may hold touching digits: their parts, in one more batch
        pieces = _pieces(marks, line, frozenset(cut))
        candidates.cut_into(pieces)
        groups = _candidate_groups(pieces, line, policy, bool(strokes))
        candidates.classify(pieces, groups)
    score = _scores(pieces, groups, [candidates.prediction(pieces[i:j]) for i, j in groups], line, policy)
    best = _best_grouping(score)  # 5. the decision
    assert best is not None  # into any number of digits, a grouping always exists
    chosen, total = best
    reader = shared_reader() if predictor.class_names == DIGITS else None
    if reader is not None and cut:  # where digits may touch, the line reader's count is weighed too
        chosen, reads = _weigh_counts(reader, ink, pieces, candidates, score, chosen, total, policy.reader_weight)
    else:
        reads = None
    if endless:
        return Reading(
            tuple(candidates.digit(pieces[i:j], scale) for i, j in chosen),
            f"a mark as long as {MAX_DIGITS} digits or more: no plausible number",
        )
    if len(chosen) == 1:  # one digit: read as predict() reads the image
        digit = (
            candidates.digit(pieces, scale)
            if len(marks) == 1
            else DigitRead(predictor.predict_prepared(prepare_ink(full_ink)), _box(pieces, scale))
        )
        return Reading((replace(digit, ink=None),))
    digits = tuple(candidates.digit(pieces[i:j], scale) for i, j in chosen)
    if reads is not None:
        digits = tuple(map(_agree, digits, reads))
    doubt = f"{len(digits)} digits: longer than a plausible number" if len(digits) > MAX_DIGITS else None
    return Reading(digits, doubt)


def _may_hold_several(mark: Mark, whole: Prediction, line: int, policy: ReadingPolicy, by_strokes: bool) -> bool:
    """Whether a mark may be digits that touch: wider than a digit usually is, or, where the marks are not
    the writer's own strokes, wide and unsure read whole; never a dash (less than FLAT strokes tall)."""
    height, width = mark[2].shape
    wide = width > policy.widest_digit * line  # one stroke through several digits, or digits that touch
    if not wide and (by_strokes or width <= policy.may_hold_several * line or whole.confidence >= policy.sure_whole):
        return False
    return height >= FLAT * stroke_width(mark[2].astype(np.float32))


def _weigh_counts(
    reader: NumberReader,
    ink: np.ndarray,
    pieces: list[_Piece],
    candidates: _Candidates,
    score: dict[tuple[int, int], float],
    chosen: list[tuple[int, int]],
    total: float,
    weight: float,
) -> tuple[list[tuple[int, int]], list[SequenceDigit] | None]:
    """The grouping, and the line reader's digits where its count is taken. Where the reader counts the
    line's digits differently from the best grouping, the two counts are weighed by likelihood: each
    count's best grouping scored by the classifier (as the decision scores it) plus the reader's CTC
    log-probability of that count's labelling (its own reading for its count, the grouping's digits for the
    other), weighted by ``weight``. The likelier count wins. Where both count alike, the reader's digits
    are returned too, to be averaged with the classifier's."""
    strip = prepare_line(ink)
    if strip is None or strip.pixels.shape[1] > MAX_WIDTH:  # a line longer than the reader reads: not weighed
        return chosen, None
    logits = reader.logits(strip)
    found = reader.decode(logits)
    if not found:
        return chosen, None
    if len(found) == len(chosen):
        return chosen, found  # both count alike: each digit as both models read it
    other = _best_grouping(score, len(found))
    if other is None:  # no grouping of the pieces into as many digits
        return chosen, None
    labels = [candidates.prediction(pieces[i:j]).label for i, j in chosen]
    if None in labels:  # a group with no ink to read: nothing to weigh
        return chosen, None
    ctc_chosen, ctc_found = reader.log_likelihoods(logits, [cast(list[int], labels), [d.label for d in found]])
    if other[1] + weight * ctc_found > total + weight * ctc_chosen:
        return other[0], found
    return chosen, None


def _agree(cut: DigitRead, read: SequenceDigit) -> DigitRead:
    """One digit, as the classifier reads its ink and the line reader reads it in the line: their
    probabilities averaged."""
    probabilities = ((cut.prediction.probabilities + read.probabilities) / 2).astype(np.float32)
    prediction = Prediction(
        int(probabilities.argmax()), probabilities, cut.prediction.prepared, cut.prediction.top_logit
    )
    return DigitRead(prediction, cut.box, cut.ink)


def _component_marks(ink: np.ndarray) -> list[Mark]:
    """The 8-connected marks of ink."""
    components, _ = ndimage.label(ink > 0, structure=np.ones((3, 3), bool))
    return [
        (s[0].start, s[1].start, components[s] == k + 1)
        for k, s in enumerate(ndimage.find_objects(components))
        if s is not None
    ]


def group_strokes(extents: Sequence[tuple[float, float]], overlap: float = POLICY.stroke_overlap) -> list[list[int]]:
    """Strokes (their ``(left, right)`` columns, in drawing order) grouped into digits: a stroke belongs to
    a group whose columns overlap its own by ``overlap`` of the narrower of the two, as a 5's bar or a
    4's second stroke does; groups left to right, strokes in drawing order."""
    groups: list[tuple[float, float, list[int]]] = []
    for k, (left, right) in enumerate(extents):
        members, lo, hi = [k], left, right
        for group in [g for g in groups if _overlaps((lo, hi), (g[0], g[1]), overlap)]:
            groups.remove(group)
            members, lo, hi = group[2] + members, min(lo, group[0]), max(hi, group[1])
        groups.append((lo, hi, sorted(members)))
    return [members for _, _, members in sorted(groups, key=lambda g: (g[0] + g[1]) / 2)]


def _overlaps(a: tuple[float, float], b: tuple[float, float], share: float) -> bool:
    common = min(a[1], b[1]) - max(a[0], b[0])
    return common > 0 and common >= share * min(a[1] - a[0], b[1] - b[0])


def _stroke_marks(ink: np.ndarray, strokes: Strokes, scale: float, policy: ReadingPolicy) -> list[Mark]:
    """One mark per group of strokes (:func:`group_strokes`): the ink within a pen's reach of its strokes."""
    reach = max(2.0, 0.5 * stroke_width(ink) + 2.0)  # half a stroke and its anti-aliased edge
    points = [np.asarray(s, np.float64).reshape(-1, 2) * scale for s in strokes]
    points = [p for p in points if len(p) and np.isfinite(p).all()]
    extents = [(float(p[:, 0].min()) - reach / 2, float(p[:, 0].max()) + reach / 2) for p in points]  # a line has width
    marks, inked = [], ink > 0
    for members in group_strokes(extents, policy.stroke_overlap):
        canvas = Image.new("1", (ink.shape[1], ink.shape[0]), 0)
        draw = ImageDraw.Draw(canvas)
        for k in members:
            line = [(float(x), float(y)) for x, y in points[k]]
            if len(line) > 1:
                draw.line(line, fill=1, width=max(1, round(2 * reach)), joint="curve")
            for x, y in line[:1] + line[-1:]:
                draw.ellipse((x - reach, y - reach, x + reach, y + reach), fill=1)
        own = inked & np.asarray(canvas, bool)
        rows, cols = np.flatnonzero(own.any(1)), np.flatnonzero(own.any(0))
        if len(rows):
            marks.append((int(rows[0]), int(cols[0]), own[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]))
    return marks


def _pieces(marks: list[Mark], line: int, cut: frozenset[int]) -> list[_Piece]:
    """Marks left to right; those in ``cut`` cut into parts where touching digits likely meet."""
    pieces: list[_Piece] = []
    for number, (top, left, mask) in enumerate(marks):
        parts = _split(mask, line) if number in cut else [(mask, 0.0)]
        for part_number, (part, crossed) in enumerate(parts):
            rows, cols = np.flatnonzero(part.any(1)), np.flatnonzero(part.any(0))
            if len(rows):
                pieces.append(
                    _Piece(
                        top + int(rows[0]),
                        left + int(cols[0]),
                        part[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1],
                        number,
                        part_number if number in cut else -1,
                        crossed,
                    )
                )
    return sorted(pieces, key=lambda p: p.centre)


def _split(mask: np.ndarray, line: int) -> list[tuple[np.ndarray, float]]:
    """The mark cut into parts along top-to-bottom paths through the least ink, near its thinnest
    columns (a path may bend, so neighbours whose columns overlap are cut apart); each part with the
    number of strokes the cut on its left crossed."""
    h, w = mask.shape
    smooth = max(3, int(0.08 * line) | 1)
    profile = np.convolve(mask.sum(0).astype(np.float32), np.ones(smooth, np.float32) / smooth, mode="same")
    margin, spacing = max(1, int(0.15 * line)), max(2, int(CUT_SPACING * line))
    valleys = [
        x
        for x in range(margin, w - margin)
        if profile[x] <= profile[max(0, x - spacing // 2) : x + spacing // 2 + 1].min()
    ]
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
    return (
        np.repeat(path + lo, step)[:h]
        if rows * step >= h
        else np.r_[np.repeat(path + lo, step), np.full(h - rows * step, path[-1] + lo)]
    )


def _candidate_groups(
    pieces: list[_Piece], line: int, policy: ReadingPolicy, by_strokes: bool = False
) -> list[tuple[int, int]]:
    """Runs ``[i, j)`` of neighbouring pieces that could be one digit, and each mark cut into pieces read
    whole (the pieces from its first to its last), however wide. Where the marks are the writer's groups
    of strokes, a digit joins marks only to take in fragments (a dot, a short stroke) that overlapped none."""
    groups = []
    for i in range(len(pieces)):
        left, right = pieces[i].left, pieces[i].right
        groups.append((i, i + 1))
        for j in range(i + 1, min(i + MAX_PIECES, len(pieces))):
            if pieces[j].left - right > policy.widest_gap * line:
                break
            left, right = min(left, pieces[j].left), max(right, pieces[j].right)
            if right - left > policy.widest * line:
                break
            tall = {p.mark for p in pieces[i : j + 1] if p.bottom - p.top >= policy.short * line}
            if by_strokes and len(tall) > 1:
                continue
            groups.append((i, j + 1))
    for mark in {p.mark for p in pieces if p.part >= 0}:
        members = [k for k, p in enumerate(pieces) if p.mark == mark]
        if (members[0], members[-1] + 1) not in groups:
            groups.append((members[0], members[-1] + 1))
    return groups


def _group_ink(ink: np.ndarray, pieces: list[_Piece]) -> np.ndarray:
    """The group's own ink in its bounding box (other marks in the box left out)."""
    top, bottom = min(p.top for p in pieces), max(p.bottom for p in pieces)
    left, right = min(p.left for p in pieces), max(p.right for p in pieces)
    keep = np.zeros((bottom - top, right - left), bool)
    for p in pieces:
        keep[p.top - top : p.bottom - top, p.left - left : p.right - left] |= p.mask
    return np.where(keep, ink[top:bottom, left:right], 0.0).astype(np.float32)


def _scores(
    pieces: list[_Piece], groups: list[tuple[int, int]], predictions: list[Prediction], line: int, policy: ReadingPolicy
) -> dict[tuple[int, int], float]:
    """Each candidate digit's score: its log-probability less its shape's costs, and, where it starts at a
    cut through a connected mark (separating it from the mark's other part), the split margin."""
    whole = [
        p.right - p.left
        for k, p in enumerate(pieces)
        if p.bottom - p.top >= 0.6 * line and p.crossed == 0 and (k + 1 == len(pieces) or pieces[k + 1].crossed == 0)
    ]
    typical = float(np.median(whole)) if whole else policy.typical_width * line
    usual = float(np.percentile([p.top_logit for p in predictions], 75))  # how sure this model is of a digit
    score = {}
    for (i, j), prediction in zip(groups, predictions, strict=True):
        height = max(p.bottom for p in pieces[i:j]) - min(p.top for p in pieces[i:j])
        ordered = sorted(pieces[i:j], key=lambda p: p.left)
        gaps, right = 0, ordered[0].right
        for piece in ordered[1:]:
            gaps, right = gaps + max(0, piece.left - right), max(right, piece.right)
        width = right - ordered[0].left
        cost = (
            (policy.fragment_cost if height < policy.short * line else 0.0)
            + policy.gap_cost * gaps / line
            + policy.wide_cost * max(0.0, width - 1.4 * typical) / line
        )
        if pieces[i].crossed:  # this digit starts where a connected mark was cut
            cost += policy.split_margin + policy.cut_cost * max(0.0, pieces[i].crossed - 1)
        cost += policy.unlike_cost * max(0.0, usual - prediction.top_logit)
        score[(i, j)] = float(np.log(max(prediction.confidence, 1e-6))) - cost
    return score


def _best_grouping(
    score: dict[tuple[int, int], float], count: int | None = None
) -> tuple[list[tuple[int, int]], float] | None:
    """The split of the pieces into digits (``count`` of them, or any number) with the highest total score,
    and that score; None when no split into ``count`` digits exists."""
    n = max(j for _, j in score)
    counts = range(n + 1) if count is not None else [0]
    best = {(0, 0): 0.0}
    back: dict[tuple[int, int], tuple[int, int]] = {}
    for i, j in sorted(score, key=lambda g: g[1]):
        for k in counts:
            here = (i, k)
            if here not in best:
                continue
            there = (j, k + 1 if count is not None else 0)
            total = best[here] + score[(i, j)]
            if total > best.get(there, -np.inf):
                best[there], back[there] = total, here
    end = (n, count if count is not None else 0)
    if end not in best:
        return None
    chosen, at = [], end
    while at[0] > 0:
        chosen.append((back[at][0], at[0]))
        at = back[at]
    return chosen[::-1], best[end]


def _box(pieces: list[_Piece], scale: float) -> tuple[int, int, int, int]:
    return _image_box(
        min(p.left for p in pieces),
        min(p.top for p in pieces),
        max(p.right for p in pieces),
        max(p.bottom for p in pieces),
        scale,
    )


def _image_box(left: int, top: int, right: int, bottom: int, scale: float) -> tuple[int, int, int, int]:
    """``(x, y, width, height)`` in the image's pixels of a box in the ink map read at ``scale``."""
    return (
        int(left / scale),
        int(top / scale),
        int(np.ceil((right - left) / scale)),
        int(np.ceil((bottom - top) / scale)),
    )
