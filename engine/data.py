"""Data sets: IDX files on disk, validated, held in memory as uint8 tensors.

MNIST and its siblings are small (60,000 28x28 images is 47 MB as uint8), so the whole set lives in one
tensor and batches are taken by indexing it. That removes per-sample Python and PIL work from the hot
loop, which is where the classic tutorial spends most of its time.

Where data comes from, in order: a folder the user names, ``$DIGIT_STUDIO_DATA``, the user cache dir
(where downloads land), and finally a download (:mod:`engine.download`, which knows nothing of data sets:
files, checksums and mirrors).
"""

from __future__ import annotations

import gzip
import io
import math
import os
import stat
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.download import ProgressCallback, RemoteFile, download_dataset
from engine.errors import DataError, DownloadError
from engine.files import folder_problem
from engine.shipped import shipped

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
IMAGE_SIZE = 28
ENV_VAR = "DIGIT_STUDIO_DATA"


@dataclass(frozen=True)
class DatasetSpec:
    """A known data set: its display name, class names and where to download it; or, ``bundled``, the
    folder of the app's own copy. ``fallback``: the known set to use when this one cannot be downloaded."""

    key: str
    title: str
    class_names: tuple[str, ...]
    mirrors: tuple[str, ...] = ()
    files: tuple[RemoteFile, ...] = ()
    bundled: Path | None = None
    fallback: str | None = None


_DIGITS = tuple(str(i) for i in range(10))

SAMPLE_FOLDER = shipped("datasets", "mnist-sample")

DATASETS: dict[str, DatasetSpec] = {
    # shipped with the app (resources/datasets/mnist-sample/README.md), so it trains with no network
    "mnist-sample": DatasetSpec(
        key="mnist-sample",
        title="MNIST sample (built in)",
        class_names=_DIGITS,
        bundled=SAMPLE_FOLDER,
    ),
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
        fallback="mnist-sample",
    ),
    "fashion-mnist": DatasetSpec(
        key="fashion-mnist",
        title="Fashion-MNIST (clothing)",
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        mirrors=(  # https first; the checksums protect the content over plain http
            "https://fashion-mnist.s3.eu-central-1.amazonaws.com/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
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
        mirrors=("https://codh.rois.ac.jp/kmnist/dataset/kmnist/", "http://codh.rois.ac.jp/kmnist/dataset/kmnist/"),
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

# Half a million 28x28 images is 392 MB in memory, eight times MNIST's training set (EMNIST's digits
# have 240,000); both splits at the limit stay under a gigabyte.
MAX_ITEMS = 500_000
# Deflate cannot expand data more than 1032-fold, so a gzip file of N bytes holds at most this many times N:
# a header announcing more is refused before a byte of the body is inflated.
RawStream = gzip.GzipFile | io.BufferedReader  # an IDX file as read: compressed or not
GZIP_MAX_RATIO = 1032
CHUNK = 1 << 20


def read_idx(path: Path | str, expected_magic: int) -> np.ndarray:
    """Read one IDX file (raw or gzip) into a uint8 array, refusing anything malformed.

    The header is read and checked first, against what the file can hold; the body is then streamed
    into an array of exactly the announced size, so a small file never inflates into gigabytes.
    """
    path = Path(path)
    kind = "images" if expected_magic == IMAGES_MAGIC else "labels"
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise DataError(f"{path}: not a regular file")
        with path.open("rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw) if compressed else raw
            capacity = info.st_size * GZIP_MAX_RATIO if compressed else info.st_size
            header, dims = _read_header(path, stream, expected_magic, kind)
            expected = int(np.prod(dims, dtype=np.int64))
            if header + expected > capacity:
                holds = "can hold at most" if compressed else "holds"
                raise DataError(
                    f"{path}: truncated: header announces {dims[0]} {kind} ({header + expected} bytes) "
                    f"but the file {holds} {capacity} bytes"
                )
            body = np.empty(expected, dtype=np.uint8)
            done = _read_into(stream, body.data)
            if done < expected:
                raise DataError(
                    f"{path}: truncated: header announces {dims[0]} {kind} ({header + expected} bytes) "
                    f"but the file holds {header + done} bytes"
                )
            extra = len(stream.read(CHUNK))
            if extra:
                raise DataError(
                    f"{path}: {extra}{'+' if extra == CHUNK else ''} unexpected bytes after the {dims[0]} {kind}"
                )
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    return body.reshape(dims)


def _read_header(path: Path, stream: RawStream, expected_magic: int, kind: str) -> tuple[int, tuple[int, ...]]:
    start = stream.read(4)
    if len(start) < 4:
        raise DataError(f"{path}: truncated: {len(start)} bytes is too short for an IDX header")
    (magic,) = struct.unpack(">I", start)
    if magic != expected_magic:
        raise DataError(f"{path}: wrong magic number {magic} (an IDX {kind} file starts with {expected_magic})")
    ndim = start[3]
    packed = stream.read(4 * ndim)
    if len(packed) < 4 * ndim:
        raise DataError(f"{path}: truncated inside the header")
    dims = struct.unpack(f">{ndim}I", packed)
    if kind == "images" and (ndim != 3 or dims[1:] != (IMAGE_SIZE, IMAGE_SIZE)):
        raise DataError(f"{path}: expected images of {IMAGE_SIZE}x{IMAGE_SIZE}, header says {dims}")
    if kind == "labels" and ndim != 1:
        raise DataError(f"{path}: expected a 1-dimensional labels file, got {ndim} dimensions")
    if dims[0] > MAX_ITEMS:
        raise DataError(f"{path}: header announces {dims[0]:,} {kind}, more than the {MAX_ITEMS:,} a data set may have")
    return 4 + 4 * ndim, dims


def _read_into(stream: RawStream, target: memoryview) -> int:
    """Fill ``target`` from ``stream`` in chunks; the count of bytes read (fewer at the end of the data)."""
    done = 0
    while done < len(target):
        count = stream.readinto(target[done : done + CHUNK])
        if not count:
            break
        done += count
    return done


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
            f"{labels_path}: label {int(labels[bad[0]])} at index {int(bad[0])} is out of range 0..{num_classes - 1}"
        )
    return Split(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))


def compute_normalization(split: Split) -> Normalization:
    """Mean and standard deviation of the pixels in [0, 1], summed in chunks: a float copy of a large split
    would take four times its memory."""
    total = squares = 0.0
    flat = split.images.reshape(len(split), -1)
    for start in range(0, len(split), 10_000):
        chunk = flat[start : start + 10_000].to(torch.float64).div_(255.0)
        total += float(chunk.sum())
        squares += float(chunk.square().sum())
    count = flat.numel()
    mean = total / count
    std = math.sqrt(max(squares / count - mean * mean, 0.0) * count / max(count - 1, 1))
    return Normalization(mean=round(mean, 4), std=round(std, 4))


def load_folder(folder: Path | str, name: str | None = None) -> Dataset:
    """Load train and test splits from a folder of IDX files."""
    folder = Path(folder).expanduser()
    problem = folder_problem(folder)
    if problem is not None:
        raise DataError(f"{folder}: data folder {problem}")
    train = load_split(folder, "train")
    normalization = compute_normalization(train)
    if normalization.std < 1e-3:  # every input would be divided by (nearly) zero
        raise DataError(f"{folder}: the training images are all the same shade, nothing to learn from")
    test = load_split(folder, "t10k")
    key = name or guess_name(folder)
    spec = DATASETS.get(key)
    class_names = spec.class_names if spec else _DIGITS
    return Dataset(key, folder, class_names, train, test, normalization)


def split_files(folder: Path) -> list[Path]:
    """The IDX files a data set folder holds (those :func:`load_folder` reads)."""
    files = []
    for split in ("train", "t10k"):
        for kind in ("images", "labels"):
            try:
                files.append(_find(folder, split, kind))
            except DataError:
                continue
    return files


def describe_classes(class_names: Sequence[str]) -> str:
    """``the Fashion-MNIST (clothing) classes`` for a known set's names, else the names themselves."""
    names = tuple(class_names)
    for spec in DATASETS.values():
        if spec.class_names == names and spec.bundled is None:  # a sample's classes are its full set's
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
    raise DataError(
        f"{model} recognises {describe_classes(class_names)}, but the data set {dataset.name} "
        f"({dataset.folder}) holds {describe_classes(dataset.class_names)}: choose the data set "
        f"the model was trained on"
    )


def guess_name(folder: Path) -> str:
    lowered = folder.name.lower().replace("_", "-")
    for key in ("fashion-mnist", "kmnist", "mnist-sample", "mnist"):
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
    spec = DATASETS.get(spec_key)
    if spec is not None and spec.bundled is not None:
        return spec.bundled if has_split_files(spec.bundled) else None
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
    if found is None and DATASETS[key].bundled is not None:
        raise DataError(f"{DATASETS[key].title} is missing from this installation ({DATASETS[key].bundled})")
    if found is None:
        target = cache_dir() / key
        # a variable that points where the files are not would otherwise go unmentioned: say so
        env = os.environ.get(ENV_VAR)
        looked = f" (${ENV_VAR} is {env}, which holds no {key} IDX files)" if env else ""
        if not download:
            raise DataError(f"{DATASETS[key].title} is not on this computer; put its IDX files in {target}{looked}")
        spec = DATASETS[key]
        try:
            found = download_dataset(spec.files, spec.mirrors, target, progress=progress, cancelled=cancelled)
        except DownloadError as exc:
            raise DownloadError(f"{exc}{looked}") from exc
    return load_folder(found, name=key)


def resolve_or_fallback(
    name: str, progress: ProgressCallback | None = None, cancelled: Callable[[], bool] | None = None
) -> tuple[Dataset, str | None]:
    """:func:`resolve` a known set; where it cannot be downloaded and has a fallback (MNIST: the built-in
    sample), that instead, with why (None when the set asked for was loaded)."""
    try:
        return resolve(name, progress=progress, cancelled=cancelled), None
    except DownloadError as exc:
        spec = DATASETS.get(name.lower())
        if spec is None or spec.fallback is None:
            raise
        return resolve(spec.fallback), str(exc)


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
