"""Train the bundled model (resources/models/digitnet-mnist.pt) for MNIST and for other writers' pen digits.

    python tools/train_bundled_model.py [--mnist DIR] [--pendigits FILE] [--raw-copies 2] [--renders 2]
        [--epochs 18] [--width 24] [--seed 0] [--out resources/models/digitnet-mnist.pt]

The training set is MNIST's training images (--mnist: the 10,000-image sample), as they are (twice) and
as the app prepares an image (engine.preprocess.preprocess: so that a digit cut out of a number reads as MNIST,
not as a pen digit), plus ``--renders``
drawings of every pendigits digit of the training share (engine.pendigits.split; its held-out share is
never seen here), each drawn as a canvas drawing with a random size, place, pen and distortion
(engine.pendigits.random_drawing) and prepared exactly as the app prepares a drawing
(engine.preprocess.preprocess). The test set is MNIST's. Then the default model's recipe (digitnet,
``--width`` wide), seeded, on the CPU, saved slim (no optimiser state, no data folder), its command in its
metadata.
``benchmarks/bench_people.py`` measures the result on the held-out pendigits digits.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import checkpoint  # noqa: E402
from engine.config import TrainConfig  # noqa: E402
from engine.data import load_folder, read_idx, write_idx  # noqa: E402
from engine.events import EpochEvent  # noqa: E402
from engine.inference import BUNDLED_MODEL  # noqa: E402
from engine.pendigits import PENDIGITS, random_drawing, read_pendigits, split  # noqa: E402
from engine.preprocess import preprocess  # noqa: E402
from engine.training import Trainer  # noqa: E402


def pen_renders(path: Path, renders: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``renders`` prepared 28x28 drawings (uint8, ink bright) of each training-share pendigits digit: the
    first as written, the others distorted as other writers might write it."""
    train, _ = split(read_pendigits(path))
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for trajectory, label in zip(train.trajectories, train.labels, strict=True):
        for k in range(renders):
            prepared = preprocess(random_drawing(trajectory, rng, distort=k > 0))
            if not prepared.empty:
                images.append(np.round(prepared.pixels * 255).astype(np.uint8))
                labels.append(int(label))
    return np.stack(images), np.asarray(labels, np.uint8)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=str(ROOT / "resources" / "datasets" / "mnist-sample"))
    parser.add_argument("--pendigits", default=str(PENDIGITS))
    parser.add_argument("--raw-copies", type=int, default=2, help="MNIST's images as they are, this many times")
    parser.add_argument("--renders", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=18)
    parser.add_argument("--width", type=int, default=24, help="digitnet's width (its first layer's channels)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(BUNDLED_MODEL))
    args = parser.parse_args()

    start = time.perf_counter()
    mnist = Path(args.mnist)
    images, labels = pen_renders(Path(args.pendigits), args.renders, args.seed)
    print(f"{len(labels)} pen-digit drawings prepared in {time.perf_counter() - start:.0f} s", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bundled-"))
    try:
        folder = work / "mnist"  # the data set's name, as the checkpoint records it: MNIST's classes
        folder.mkdir()
        mnist_images = read_idx(mnist / "train-images-idx3-ubyte.gz", 2051)
        mnist_labels = read_idx(mnist / "train-labels-idx1-ubyte.gz", 2049)
        prepared = np.stack([np.round(preprocess(image).pixels * 255).astype(np.uint8) for image in mnist_images])
        raw = args.raw_copies  # MNIST's own form weighs most: the test set is in it
        write_idx(folder / "train-images-idx3-ubyte.gz", np.concatenate([mnist_images] * raw + [prepared, images]))
        write_idx(folder / "train-labels-idx1-ubyte.gz", np.concatenate([mnist_labels] * (raw + 1) + [labels]))
        for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
            shutil.copy(mnist / name, folder / name)
        config = TrainConfig.for_model("digitnet", epochs=args.epochs, device="cpu", seed=args.seed)
        trainer = Trainer(config, load_folder(folder, name="mnist"), model_kwargs={"width": args.width})

        def report(event: object) -> None:
            if isinstance(event, EpochEvent):
                print(
                    f"epoch {event.epoch}/{event.total_epochs}: MNIST test accuracy {event.test_accuracy:.2%} "
                    f"({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )

        trainer.run(report)
        command = " ".join(shlex.quote(a) for a in ["python", "tools/train_bundled_model.py", *sys.argv[1:]])
        checkpoint.save(checkpoint.trainer_payload(trainer, command, slim=True), args.out)
        print(f"saved {args.out}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
