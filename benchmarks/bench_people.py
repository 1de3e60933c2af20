"""How the app reads people: other writers' pen digits (pendigits digits held out from training and tuning,
engine.pendigits.split) drawn as canvas drawings, read as `predict` and the canvases read them.

    python benchmarks/bench_people.py [--checkpoint FILE] [--pendigits FILE] [--digits 1500] [--numbers 300]
        [--teach] [--seed 0]

Printed: single digits read right by `predict` (engine.reading.read_number) against the classifier alone,
the share read as several digits, each class's accuracy; numbers of 2-6 digits written apart (gaps of
0.15-0.6 digit heights) and tight (-0.25 to 0.05: columns overlapping, most touching), as images (as
`predict` reads a file) and with their strokes (as the wide canvas reads them), one stroke a digit; with ``--teach``, a model taught 10 drawings per digit read on the others.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import print_json, print_table

SETS = {"apart": (0.15, 0.6), "tight": (-0.25, 0.05)}


def read_singles(predictor, held, rng, count: int) -> tuple[list[tuple[str, str]], dict]:
    from engine.pendigits import random_drawing
    from engine.reading import read_number

    pick = rng.choice(len(held), min(count, len(held)), replace=False)
    right = alone = several = 0
    per_class = np.zeros((10, 2))
    for i in pick:
        image = random_drawing(held.trajectories[i], rng)
        label = int(held.labels[i])
        reading = read_number(predictor, image)
        right += reading.text == str(label)
        several += len(reading.digits) > 1
        alone += predictor.predict(image).label == label
        per_class[label] += (reading.text == str(label), 1)
    n = len(pick)
    rows = [
        ("single digits: read right (classifier alone vs predict)", f"{alone / n:.3f}", f"{right / n:.3f}", ""),
        ("single digits: read as several digits", "", f"{several / n:.3f}", ""),
    ]
    classes = per_class[:, 0] / np.maximum(per_class[:, 1], 1)
    rows.append(("single digits per class, 0-9", "", " ".join(f"{c:.2f}" for c in classes), ""))
    return rows, {
        "single": round(right / n, 4),
        "single_alone": round(alone / n, 4),
        "several": round(several / n, 4),
        "per_class": [round(float(c), 3) for c in classes],
    }


def read_numbers(predictor, held, rng, count: int) -> tuple[list[tuple[str, str]], dict]:
    """Numbers as images (as `predict` reads a file) and, for the wide canvas, with their strokes."""
    from engine.pendigits import number_drawing
    from engine.reading import read_number

    rows, figures = [], {}
    for name, gaps in SETS.items():
        tallies = {"image": [0, 0], "strokes": [0, 0]}
        for _ in range(count):
            chosen = rng.choice(len(held), int(rng.integers(2, 7)))
            image, strokes = number_drawing([held.trajectories[i] for i in chosen], rng, gaps)
            truth = "".join(str(int(held.labels[i])) for i in chosen)
            for way, given in (("image", None), ("strokes", strokes)):
                text = read_number(predictor, image, strokes=given).text
                tallies[way][0] += len(text) == len(truth)
                tallies[way][1] += text == truth
        for way, (counted, whole) in tallies.items():
            rows.append(
                (
                    f"numbers {name}, by {way}: count right / whole right",
                    "",
                    f"{counted / count:.3f} / {whole / count:.3f}",
                    "",
                )
            )
            figures[f"{name}_{way}"] = {"count": round(counted / count, 4), "whole": round(whole / count, 4)}
    return rows, figures


def taught(checkpoint_path: Path | None, held, rng) -> tuple[list[tuple[str, str]], dict]:
    """10 drawings per digit taught (`teach`, as the CLI does), the held-out share's others read by `predict`."""
    from PIL import Image

    from engine import checkpoint as ckpt
    from engine.inference import BUNDLED_MODEL, Predictor
    from engine.pendigits import random_drawing
    from engine.reading import read_number
    from engine.teaching import load_samples, replay_for, teach

    base = ckpt.load(checkpoint_path or BUNDLED_MODEL)
    order = rng.permutation(len(held))
    taught_idx = np.concatenate([[i for i in order if held.labels[i] == d][:10] for d in range(10)])
    others = np.setdiff1d(order, taught_idx)[:1000]
    with tempfile.TemporaryDirectory() as folder:
        for k, i in enumerate(taught_idx):
            path = Path(folder) / str(int(held.labels[i])) / f"{k}.png"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(random_drawing(held.trajectories[i], rng)).save(path)
        samples = load_samples(folder, base.class_names)
    replay, _ = replay_for(base)
    start = time.perf_counter()
    result = teach(base, samples, replay)
    seconds = time.perf_counter() - start
    taught_checkpoint = ckpt.from_payload(result.payload)
    scores = {}
    for name, model in (("base", base), ("taught", taught_checkpoint)):
        predictor = Predictor.from_checkpoint(model)
        drawings = np.random.default_rng(1)
        scores[name] = np.mean(
            [
                read_number(predictor, random_drawing(held.trajectories[i], drawings)).text == str(int(held.labels[i]))
                for i in others
            ]
        )
    rows = [
        (
            "after teaching 10 per digit: others read right (base vs taught)",
            f"{scores['base']:.3f}",
            f"{scores['taught']:.3f}",
            f"{seconds:.1f} s",
        )
    ]
    return rows, {"teach_base": round(float(scores["base"]), 4), "teach_taught": round(float(scores["taught"]), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="default: the bundled model")
    parser.add_argument("--pendigits", default=None, help="default: ../shared/datasets/pendigits/pendigits.tra")
    parser.add_argument("--digits", type=int, default=1500)
    parser.add_argument("--numbers", type=int, default=300, help="numbers per set")
    parser.add_argument("--teach", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from engine import checkpoint as ckpt
    from engine.inference import Predictor, load_bundled
    from engine.pendigits import PENDIGITS, read_pendigits, split

    torch.set_num_threads(1)
    predictor = Predictor.from_checkpoint(ckpt.load(args.checkpoint)) if args.checkpoint else load_bundled()
    _, held = split(read_pendigits(args.pendigits or PENDIGITS))
    rng = np.random.default_rng(args.seed)
    rows, figures = read_singles(predictor, held, rng, args.digits)
    more, numbers = read_numbers(predictor, held, rng, args.numbers)
    rows += more
    figures.update(numbers)
    if args.teach:
        more, teaching = taught(Path(args.checkpoint) if args.checkpoint else None, held, rng)
        rows += more
        figures.update(teaching)
    print_table(
        f"Reading other writers ({len(held)} held-out pendigits digits; {args.digits} singles, "
        f"{args.numbers} numbers per set)",
        rows,
    )
    print_json("people", figures)


if __name__ == "__main__":
    main()
