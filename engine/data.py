"""Data sets: IDX files on disk, validated, held in memory as uint8 tensors.

MNIST and its siblings are small (60,000 28x28 images is 47 MB as uint8), so the whole set lives in one
tensor and batches are taken by indexing it. That removes per-sample Python and PIL work from the hot
loop, which is where the classic tutorial spends most of its time.

Where data comes from, in order: a folder the user names, ``$DIGIT_STUDIO_DATA``, the user cache dir
(where downloads land), and finally a download (see :mod:`engine.download`).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.errors import DataError, DownloadError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
IMAGE_SIZE = 28
ENV_VAR = "DIGIT_STUDIO_DATA"


@dataclass(frozen=True)
class RemoteFile:
    name: str
    md5: str


@dataclass(frozen=True)
class DatasetSpec:
    """A known data set: its display name, class names and where to download it."""

    key: str
    title: str
    class_names: tuple[str, ...]
    mirrors: tuple[str, ...]
    files: tuple[RemoteFile, ...]


_DIGITS = tuple(str(i) for i in range(10))

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        key="mnist",
        title="MNIST (handwritten digits)",
        class_names=_DIGITS,
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            RemoteFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
    ),
    "fashion-mnist": DatasetSpec(
        key="fashion-mnist",
        title="Fashion-MNIST (clothing)",
        class_names=(
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
        ),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            RemoteFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            RemoteFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83fd310"),
        ),
    ),
    "kmnist": DatasetSpec(
        key="kmnist",
        title="KMNIST (Kuzushiji characters)",
        class_names=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", "bdb82020997e1d708af4cf47b453dcf7"),
            RemoteFile("train-labels-idx1-ubyte.gz", "e144d726b3acfaa3e44228e80efcd344"),
            RemoteFile("t10k-images-idx3-ubyte.gz", "5c965bf0a639b31b8f53240b1b52f4d7"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "7320c461ea6c1c855c0b718fb2a4b134"),
        ),
    ),
}


@dataclass(frozen=True)
class Split:
    """One split held in memory: ``images`` uint8 (N, 28, 28), ``labels`` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class Normalization:
    """Mean and standard deviation of training pixels in [0, 1]; a model expects inputs normalised so."""

    mean: float
    std: float

    def apply_(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise float pixels in [0, 1] in place, and return them."""
        return x.sub_(self.mean).div_(self.std)

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std}


MNIST_NORMALIZATION = Normalization(mean=0.1307, std=0.3081)


@dataclass(frozen=True)
class Dataset:
    name: str
    folder: Path
    class_names: tuple[str, ...]
    train: Split
    test: Split
    normalization: Normalization


# --------------------------------------------------------------------------------------------- IDX files

def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    return raw


def read_idx(path: Path | str, expected_magic: int) -> np.ndarray:
    """Read one IDX file (raw or gzip) into a uint8 array, refusing anything malformed."""
    path = Path(path)
    data = _read_bytes(path)
    kind = "images" if expected_magic == IMAGES_MAGIC else "labels"
    if len(data) < 8:
        raise DataError(f"{path}: truncated: {len(data)} bytes is too short for an IDX header")
    (magic,) = struct.unpack(">I", data[:4])
    if magic != expected_magic:
        raise DataError(
            f"{path}: wrong magic number {magic} (an IDX {kind} file starts with {expected_magic})"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated inside the header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if kind == "images" and (ndim != 3 or dims[1:] != (IMAGE_SIZE, IMAGE_SIZE)):
        raise DataError(f"{path}: expected images of {IMAGE_SIZE}x{IMAGE_SIZE}, header says {dims}")
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) < expected:
        raise DataError(
            f"{path}: truncated: header announces {dims[0]} {kind} ({expected} bytes) "
            f"but the file holds {len(data)} bytes"
        )
    if len(data) > expected:
        raise DataError(f"{path}: {len(data) - expected} unexpected bytes after the {dims[0]} {kind}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _find(folder: Path, split: str, kind: str) -> Path:
    ndim = 3 if kind == "images" else 1
    candidates = [
        f"{split}-{kind}-idx{ndim}-ubyte",
        f"{split}-{kind}.idx{ndim}-ubyte",
    ]
    for stem in candidates:
        for suffix in (".gz", ""):
            path = folder / f"{stem}{suffix}"
            if path.is_file():
                return path
    raise DataError(f"{folder}: no {split} {kind} file (looked for {candidates[0]}[.gz])")


def load_split(folder: Path, split: str, num_classes: int = 10) -> Split:
    images_path = _find(folder, split, "images")
    labels_path = _find(folder, split, "labels")
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected a 1-dimensional labels file, got {labels.ndim} dimensions")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path.name} holds {len(images)} images but {labels_path.name} holds "
            f"{len(labels)} labels in {folder}"
        )
    if len(labels) == 0:
        raise DataError(f"{images_path}: holds no images")
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        raise DataError(
            f"{labels_path}: label {int(labels[bad[0]])} at index {int(bad[0])} is out of range "
            f"0..{num_classes - 1}"
        )
    return Split(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))


def compute_normalization(split: Split) -> Normalization:
    pixels = split.images.float().div_(255.0)
    return Normalization(mean=round(float(pixels.mean()), 4), std=round(float(pixels.std()), 4))


def load_folder(folder: Path | str, name: str | None = None) -> Dataset:
    """Load train and test splits from a folder of IDX files."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: data folder does not exist")
    train = load_split(folder, "train")
    test = load_split(folder, "t10k")
    key = name or guess_name(folder)
    spec = DATASETS.get(key)
    class_names = spec.class_names if spec else _DIGITS
    return Dataset(key, folder, class_names, train, test, compute_normalization(train))


def describe_classes(class_names: Sequence[str]) -> str:
    """``the Fashion-MNIST (clothing) classes`` for a known set's names, else the names themselves."""
    names = tuple(class_names)
    for spec in DATASETS.values():
        if spec.class_names == names:
            return f"the {spec.title} classes"
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return f"{len(names)} classes ({shown})"


def check_classes(dataset: Dataset, class_names: Sequence[str], model: str) -> None:
    """Refuse to evaluate or go on training ``model`` on a data set whose classes are not its own.

    A Fashion-MNIST model evaluated on MNIST digits, or trained further on them, runs without any error
    and gives meaningless numbers (or silently retrains the model for other classes): a DataError
    naming both sides is what a user can act on.
    """
    if tuple(class_names) == dataset.class_names:
        return
    raise DataError(f"{model} recognises {describe_classes(class_names)}, but the data set {dataset.name} "
                    f"({dataset.folder}) holds {describe_classes(dataset.class_names)}: choose the data set "
                    f"the model was trained on")


def guess_name(folder: Path) -> str:
    lowered = folder.name.lower().replace("_", "-")
    for key in ("fashion-mnist", "kmnist", "mnist"):
        if key in lowered:
            return key
    return "mnist"


# --------------------------------------------------------------------------------------------- sources

def cache_dir() -> Path:
    """Where downloaded data sets land (per user, per platform)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("digit-studio", appauthor=False)) / "datasets"


def has_split_files(folder: Path) -> bool:
    try:
        for split in ("train", "t10k"):
            for kind in ("images", "labels"):
                _find(folder, split, kind)
    except DataError:
        return False
    return True


def locate(name: str) -> Path | None:
    """The folder holding data set ``name`` without downloading: ``$DIGIT_STUDIO_DATA``, then the cache."""
    spec_key = name.lower()
    env = os.environ.get(ENV_VAR)
    candidates: list[Path] = []
    if env:
        root = Path(env).expanduser()
        candidates += [root / spec_key, root]
    candidates.append(cache_dir() / spec_key)
    for folder in candidates:
        try:
            if folder.is_dir() and has_split_files(folder):
                return folder
        except OSError:  # unreadable (permissions, a dead network mount): the data cannot come from here
            continue
    return None


ProgressCallback = Callable[[int, int], None]


def resolve(
    name: str = "mnist",
    folder: Path | str | None = None,
    download: bool = True,
    progress: ProgressCallback | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Dataset:
    """Load a data set the way the user expects: named folder, env var, cache, then download."""
    if folder is not None:
        return load_folder(folder, name=None)
    key = name.lower()
    if key not in DATASETS:
        raise DataError(f"unknown data set '{name}' (known: {', '.join(DATASETS)})")
    found = locate(key)
    if found is None:
        target = cache_dir() / key
        # a variable that points where the files are not would otherwise go unmentioned: say so
        env = os.environ.get(ENV_VAR)
        looked = f" (${ENV_VAR} is {env}, which holds no {key} IDX files)" if env else ""
        if not download:
            raise DataError(f"{DATASETS[key].title} is not on this computer; put its IDX files in {target}{looked}")
        from engine.download import download_dataset

        try:
            found = download_dataset(DATASETS[key], target, progress=progress, cancelled=cancelled)
        except DownloadError as exc:
            raise DownloadError(f"{exc}{looked}") from exc
    return load_folder(found, name=key)


def to_float(images: torch.Tensor, normalization: Normalization | None = None) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [0, 1], normalised when ``normalization`` is given."""
    x = images.unsqueeze(1).float().div_(255.0)
    if normalization is not None:
        x = normalization.apply_(x)
    return x


def write_idx(path: Path | str, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write a uint8 array as an IDX file (used by tests and tools that make small data sets)."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = IMAGES_MAGIC if array.ndim == 3 else LABELS_MAGIC
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    path.write_bytes(gzip.compress(payload, compresslevel=1) if compress else payload)
    return path
