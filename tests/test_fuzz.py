"""Fuzzing the two loaders of untrusted files: valid checkpoints and images, mutated (bytes flipped, cut
short, fields replaced by values of other types). Each load must succeed or raise the project's own
error, never anything else, and quickly. Seeds are fixed, so a failure reproduces."""

from __future__ import annotations

import io
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from engine import checkpoint as ckpt
from engine.config import TrainConfig
from engine.errors import CheckpointError, ImageError
from engine.images import load_image
from engine.training import Trainer

ODD_VALUES: list[Any] = [
    None,
    0,
    -1,
    2**70,
    1.5,
    math.nan,
    math.inf,
    "",
    "x" * 50,
    [],
    [1, "a"],
    {},
    {"a": 1},
    (1, 2),
    True,
    torch.zeros(3),
    torch.full((2, 2), math.nan),
    b"bytes",
]


@pytest.fixture(scope="module")
def checkpoint_bytes(tiny_dataset) -> bytes:
    trainer = Trainer(TrainConfig.for_model("lenet", epochs=1, device="cpu", batch_size=64), tiny_dataset)
    trainer.run()
    buffer = io.BytesIO()
    torch.save(ckpt.trainer_payload(trainer), buffer)
    return buffer.getvalue()


def loads_or_refuses(path: Path, load, error: type[Exception]) -> None:
    start = time.perf_counter()
    try:
        load(path)
    except error as exc:
        assert str(exc).strip() and "\n" not in str(exc)
    assert time.perf_counter() - start < 5, f"{path.name} took {time.perf_counter() - start:.1f} s"


def mutations(data: bytes, rng: random.Random, count: int) -> list[bytes]:
    out = []
    for i in range(count):
        kind = i % 3
        if kind == 0:  # flip a few bytes
            buffer = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                buffer[rng.randrange(len(buffer))] ^= 1 << rng.randrange(8)
            out.append(bytes(buffer))
        elif kind == 1:  # cut short
            out.append(data[: rng.randrange(1, len(data))])
        else:  # overwrite a run with random bytes
            start = rng.randrange(len(data))
            out.append(data[:start] + rng.randbytes(rng.randint(1, 64)) + data[start + 64 :])
    return out


def test_mutated_checkpoint_bytes(checkpoint_bytes: bytes, tmp_path: Path) -> None:
    rng = random.Random(21)
    for i, mutated in enumerate(mutations(checkpoint_bytes, rng, 150)):
        path = tmp_path / f"m{i}.pt"
        path.write_bytes(mutated)
        loads_or_refuses(path, ckpt.load, CheckpointError)


def _fields(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into nested dicts and lists (lists: their first three items)."""
    paths = []
    if isinstance(value, dict):
        for key, item in value.items():
            paths.append((*prefix, key))
            paths += _fields(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:3]):
            paths.append((*prefix, index))
            paths += _fields(item, (*prefix, index))
    return paths


def test_checkpoint_fields_replaced_by_other_types(checkpoint_bytes: bytes, tmp_path: Path) -> None:
    rng = random.Random(22)
    payload = torch.load(io.BytesIO(checkpoint_bytes), weights_only=True)
    paths = _fields(payload)
    for i in range(200):
        data = torch.load(io.BytesIO(checkpoint_bytes), weights_only=True)
        keys = rng.choice(paths)
        target = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = rng.choice(ODD_VALUES)
        path = tmp_path / f"f{i}.pt"
        torch.save(data, path)
        loads_or_refuses(path, ckpt.load, CheckpointError)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"])
def test_mutated_images(tmp_path: Path, fmt: str) -> None:
    rng = random.Random(fmt)
    pixels = np.full((64, 48), 255, np.uint8)
    pixels[10:50, 20:28] = 0
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    for i, mutated in enumerate(mutations(buffer.getvalue(), rng, 60)):
        path = tmp_path / f"m{i}.{fmt.lower()}"
        path.write_bytes(mutated)
        loads_or_refuses(path, load_image, ImageError)
