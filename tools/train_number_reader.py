"""Train the number reader (engine/number_reader.py) that resources/models/number-reader.pt holds.

    python tools/train_number_reader.py [--data DIR] [--pendigits FILE] [--steps 8000]
        [--out resources/models/number-reader.pt]

Numbers of 1-7 digits are composed from MNIST training digits (--data: a folder of MNIST's IDX files; the
bundled sample by default) and, as often, from pen digits of other writers (--pendigits: the training
share of engine.pendigits.split, each drawn three times as a 28x28 digit with a random pen and
distortion), each digit scaled a little, set with gaps from a quarter of a digit's width
overlapping to half a digit apart and jittered up and down, their ink combined where they overlap; each
is prepared as the app prepares a line (engine.number_reader.prepare_line) and the net learns with CTC
loss. About 30 minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.data import read_idx  # noqa: E402
from engine.files import atomic_write  # noqa: E402
from engine.number_reader import BLANK, FIELD, MEAN, READER_FILE, STD, STRIDE, NumberNet, prepare_line  # noqa: E402
from engine.pendigits import PENDIGITS, distorted, read_pendigits, render, split  # noqa: E402
from tests.numbers import compose  # noqa: E402

GAPS = (-6, 12)  # pixels between neighbours' ink at MNIST's scale (a digit is about 12-20 px wide)


def pen_digits(path: Path, seed: int, renders: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The training share's pen digits drawn as MNIST's digits are: in a 20 px box of a 28x28 field,
    bright ink, each ``renders`` times with another pen and distortion."""
    train, _ = split(read_pendigits(path))
    rng = np.random.default_rng(seed)
    images = [
        render(distorted(t, rng), (FIELD, FIELD), (4, 4, 20, 20), rng.uniform(1.5, 3.5))
        for t in train.trajectories
        for _ in range(renders)
    ]
    return np.stack(images), np.repeat(train.labels, renders).astype(np.uint8)


def number(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    length = int(rng.integers(1, 8))
    chosen = rng.integers(0, len(images), length)
    digits = []
    for i in chosen:
        size = int(round(28 * rng.uniform(0.8, 1.0)))
        digits.append(np.asarray(Image.fromarray(images[i]).resize((size, size), Image.BILINEAR)))
    height = max(d.shape[0] for d in digits)
    digits = [np.pad(d, ((height - d.shape[0], 0), (0, 0))) for d in digits]  # same baseline
    gaps = [int(rng.integers(GAPS[0], GAPS[1] + 1)) for _ in range(length - 1)]
    return compose(digits, gaps, rng, jitter=2), [int(labels[i]) for i in chosen]


class Numbers(torch.utils.data.IterableDataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, batch: int, seed: int) -> None:
        self.images, self.labels, self.batch, self.seed = images, labels, batch, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng(self.seed + (info.id if info else 0))
        while True:
            strips, targets = [], []
            while len(strips) < self.batch:
                image, digits = number(self.images, self.labels, rng)
                strip = prepare_line(image.astype(np.float32) / 255.0)
                if strip is not None and strip.pixels.shape[1] // STRIDE >= 2 * len(digits):
                    strips.append(strip.pixels)
                    targets.append(digits)
            width = max(s.shape[1] for s in strips)
            width += (-width) % STRIDE
            x = torch.zeros(len(strips), 1, FIELD, width)
            for k, s in enumerate(strips):
                x[k, 0, :, : s.shape[1]] = torch.from_numpy(s)
            frames = torch.tensor([s.shape[1] // STRIDE for s in strips])
            yield (
                (x - MEAN) / STD,
                torch.tensor([d for t in targets for d in t]),
                torch.tensor([len(t) for t in targets]),
                frames,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "resources" / "datasets" / "mnist-sample"))
    parser.add_argument("--pendigits", default=str(PENDIGITS), help="'' for MNIST's digits alone")
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(READER_FILE))
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # the other core composes numbers
    folder = Path(args.data)
    images = read_idx(folder / "train-images-idx3-ubyte.gz", 2051)
    labels = read_idx(folder / "train-labels-idx1-ubyte.gz", 2049)
    if args.pendigits:  # about as many pen digits as MNIST's: half the numbers' digits are other writers'
        pen_images, pen_labels = pen_digits(Path(args.pendigits), args.seed)
        images, labels = np.concatenate([images, pen_images]), np.concatenate([labels, pen_labels])
    loader = torch.utils.data.DataLoader(
        Numbers(images, labels, args.batch, args.seed), batch_size=None, num_workers=1, prefetch_factor=4
    )
    model = NumberNet()
    optimizer = torch.optim.AdamW(model.parameters(), 3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=args.steps)
    ctc = nn.CTCLoss(blank=BLANK, zero_infinity=True)
    start = time.perf_counter()
    for step, (x, targets, lengths, frames) in enumerate(loader):
        if step == args.steps:
            break
        log_probabilities = model(x).permute(2, 0, 1).log_softmax(2)
        loss = ctc(log_probabilities, targets, frames, lengths)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 250 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {loss.item():.3f}  {time.perf_counter() - start:.0f} s", flush=True)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out = atomic_write(Path(args.out), lambda temporary: torch.save(state, temporary))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
