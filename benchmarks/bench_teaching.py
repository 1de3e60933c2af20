"""Teaching a writer's handwriting: accuracy on that writer's other digits before and after, the MNIST test
accuracy the taught model keeps, and the seconds it takes.

    python benchmarks/bench_teaching.py [--samples DIR] [--test DIR] [--per-digit 10] [--data DIR]

Without --samples and --test, a synthetic writer (tests/writer_digits.py: a 1 with a flag and a base, a 7
with a crossbar, an open 4, jittered) gives both folders; point them at real writers' digits
(DIR/<digit>/*.png) to measure what matters. The base is the bundled model; replay comes from --data.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import DEFAULT_DATA, print_json, print_table


def folder_accuracy(predictor, folder: Path) -> float:
    from engine.images import load_image

    right = total = 0
    for path in sorted(folder.glob("*/*.png")):
        prediction = predictor.predict(load_image(path))
        right += prediction.label is not None and predictor.class_names[prediction.label] == path.parent.name
        total += 1
    return right / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", help="the writer's samples to teach (DIR/<digit>/*.png)")
    parser.add_argument("--test", help="the writer's other digits (DIR/<digit>/*.png)")
    parser.add_argument("--per-digit", type=int, default=10)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    args = parser.parse_args()

    from engine import checkpoint, data
    from engine.evaluation import evaluate
    from engine.inference import BUNDLED_MODEL, Predictor
    from engine.teaching import load_samples, teach
    from tests.writer_digits import write_samples

    scratch = tempfile.TemporaryDirectory()
    samples = Path(args.samples) if args.samples else write_samples(Path(scratch.name) / "teach", args.per_digit, 1)
    test = Path(args.test) if args.test else write_samples(Path(scratch.name) / "test", 20, 2)
    base = checkpoint.load(BUNDLED_MODEL)
    replay = data.load_folder(args.data)
    loaded = load_samples(samples, base.class_names)
    start = time.perf_counter()
    result = teach(base, loaded, replay)
    seconds = time.perf_counter() - start
    taught = checkpoint.from_payload(result.payload)
    before = folder_accuracy(Predictor.from_checkpoint(base), test)
    after = folder_accuracy(Predictor.from_checkpoint(taught), test)
    mnist_before = evaluate(base.model, replay.test, base.normalization, "cpu").accuracy
    mnist_after = evaluate(taught.model, replay.test, taught.normalization, "cpu").accuracy
    print_table(
        f"Teaching {len(loaded)} samples ({samples}); tested on {test}",
        [
            ("writer's other digits, accuracy", f"{before:.3f}", f"{after:.3f}", ""),
            ("MNIST test accuracy", f"{mnist_before:.4f}", f"{mnist_after:.4f}", ""),
            ("seconds to teach (with the held-out trial)", "-", f"{seconds:.1f}", ""),
        ],
    )
    print_json(
        "teaching",
        {
            "samples": len(loaded),
            "writer_before": before,
            "writer_after": after,
            "mnist_before": mnist_before,
            "mnist_after": mnist_after,
            "seconds": round(seconds, 2),
        },
    )


if __name__ == "__main__":
    main()
