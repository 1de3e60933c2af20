from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import data
from engine.errors import DataError
from tests.helpers import synthetic_digits, write_dataset


def _copy(tiny_data: Path, tmp_path: Path) -> Path:
    target = tmp_path / "mnist"
    shutil.copytree(tiny_data, target)
    return target


def test_loads_gzip_and_raw_files_identically(tiny_data: Path, tmp_path: Path) -> None:
    raw = write_dataset(tmp_path / "raw", compress=False)
    a, b = data.load_folder(tiny_data), data.load_folder(raw)
    assert a.train.images.dtype == torch.uint8 and a.train.images.shape == (320, 28, 28)
    assert a.test.labels.dtype == torch.int64 and len(a.test) == 100
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    assert 0 < a.normalization.mean < 1 and 0 < a.normalization.std < 1


def test_round_trip_preserves_pixels(tmp_path: Path) -> None:
    images, labels = synthetic_digits(20)
    data.write_idx(tmp_path / "x-images-idx3-ubyte.gz", images)
    assert np.array_equal(data.read_idx(tmp_path / "x-images-idx3-ubyte.gz", data.IMAGES_MAGIC), images)


def test_truncated_images_file_names_the_file(tiny_data: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_data, tmp_path)
    path = folder / "train-images-idx3-ubyte.gz"
    payload = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(payload[: len(payload) // 2]))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz.*truncated"):
        data.load_folder(folder)


def test_truncated_gzip_stream_is_refused(tiny_data: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_data, tmp_path)
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz.*(corrupt or truncated|truncated)"):
        data.load_folder(folder)


def test_wrong_magic_number(tiny_data: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_data, tmp_path)
    labels = folder / "train-labels-idx1-ubyte.gz"
    images = folder / "train-images-idx3-ubyte.gz"
    labels.write_bytes(images.read_bytes())  # an images file where labels belong
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: wrong magic number 2051"):
        data.load_folder(folder)


def test_counts_that_disagree(tiny_data: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_data, tmp_path)
    _, labels = synthetic_digits(50)
    data.write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DataError, match="holds 100 images but t10k-labels-idx1-ubyte.gz holds 50 labels"):
        data.load_folder(folder)


def test_label_out_of_range(tiny_data: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_data, tmp_path)
    _, labels = synthetic_digits(320)
    labels[7] = 11
    data.write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DataError, match=r"label 11 at index 7 is out of range 0..9"):
        data.load_folder(folder)


def test_trailing_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t10k-labels-idx1-ubyte"
    data.write_idx(path, np.zeros(5, np.uint8))
    path.write_bytes(path.read_bytes() + b"\0\0")
    with pytest.raises(DataError, match="2 unexpected bytes"):
        data.read_idx(path, data.LABELS_MAGIC)


def test_missing_folder_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"/nope: data folder does not exist"):
        data.load_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no train images file"):
        data.load_folder(tmp_path / "empty")


def test_resolve_prefers_env_var_then_cache(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    shutil.copytree(tiny_data, root / "mnist")
    monkeypatch.setenv(data.ENV_VAR, str(root))
    assert data.resolve("mnist").folder == root / "mnist"
    monkeypatch.delenv(data.ENV_VAR)
    with pytest.raises(DataError, match=r"put its IDX files in .*datasets/mnist"):
        data.resolve("mnist", download=False)
    shutil.copytree(tiny_data, data.cache_dir() / "mnist")
    assert data.resolve("mnist", download=False).folder == data.cache_dir() / "mnist"


def test_unknown_dataset_name() -> None:
    with pytest.raises(DataError, match="unknown data set 'cifar'"):
        data.resolve("cifar")


def test_to_float_normalises() -> None:
    images = torch.full((2, 28, 28), 255, dtype=torch.uint8)
    x = data.to_float(images, data.Normalization(0.5, 0.25))
    assert x.shape == (2, 1, 28, 28) and torch.allclose(x, torch.full_like(x, 2.0))


def test_locate_looks_in_the_environment_folder_then_the_cache(tiny_data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DIGIT_STUDIO_DATA", str(tiny_data.parent))  # a folder holding mnist/
    assert data.locate("mnist") == tiny_data
    monkeypatch.setenv("DIGIT_STUDIO_DATA", str(tiny_data))  # the files themselves
    assert data.locate("mnist") == tiny_data
    monkeypatch.delenv("DIGIT_STUDIO_DATA")
    assert data.locate("mnist") is None
    shutil.copytree(tiny_data, data.cache_dir() / "mnist")
    assert data.locate("mnist") == data.cache_dir() / "mnist"


def test_locate_passes_over_a_folder_it_cannot_read(tiny_data: Path, monkeypatch) -> None:
    """The app describes the data set at start-up: an unreadable $DIGIT_STUDIO_DATA must not stop it."""
    real = data.has_split_files

    def has_split_files(folder: Path) -> bool:
        if folder == tiny_data:
            raise PermissionError(13, "Permission denied", str(folder))
        return real(folder)

    monkeypatch.setattr(data, "has_split_files", has_split_files)
    monkeypatch.setenv("DIGIT_STUDIO_DATA", str(tiny_data))
    assert data.locate("mnist") is None
    shutil.copytree(tiny_data, data.cache_dir() / "mnist")
    assert data.locate("mnist") == data.cache_dir() / "mnist"


def test_a_model_of_other_classes_is_refused_naming_both(tiny_data: Path, tmp_path: Path) -> None:
    """Evaluating a Fashion-MNIST model on digits would run and report nonsense; it is a DataError instead."""
    digits = data.load_folder(tiny_data)
    clothes = data.load_folder(write_dataset(tmp_path / "fashion-mnist"))
    data.check_classes(digits, tuple(str(i) for i in range(10)), "digits.pt")  # the same classes pass
    with pytest.raises(DataError) as raised:
        data.check_classes(digits, clothes.class_names, "clothes.pt")
    message = str(raised.value)
    assert "clothes.pt recognises the Fashion-MNIST (clothing) classes" in message
    assert "the data set mnist" in message and "MNIST (handwritten digits) classes" in message
    assert "choose the data set the model was trained on" in message
    assert data.describe_classes(("a", "b", "c", "d", "e", "f")) == "6 classes (a, b, c, d, e, ...)"


def test_a_data_variable_pointing_where_the_files_are_not_is_named_in_the_error(tmp_path, monkeypatch) -> None:
    from engine.data import resolve
    from engine.errors import DownloadError

    monkeypatch.setenv("DIGIT_STUDIO_DATA", str(tmp_path / "typo"))
    with pytest.raises(DataError, match=rf"\$DIGIT_STUDIO_DATA is {tmp_path / 'typo'}, which holds no mnist IDX"):
        resolve("mnist", download=False)

    def offline(*args, **kwargs):
        raise DownloadError("cannot download train-images-idx3-ubyte.gz: no network connection")

    monkeypatch.setattr(data, "download_dataset", offline)
    with pytest.raises(DownloadError, match=r"no network connection \(\$DIGIT_STUDIO_DATA is .*typo, which holds"):
        resolve("mnist")


def _gzip_header_only(path: Path, count: int, body: bytes = b"") -> Path:
    import struct

    path.write_bytes(gzip.compress(struct.pack(">IIII", data.IMAGES_MAGIC, count, 28, 28) + body))
    return path


def test_a_gzip_header_announcing_more_than_the_file_can_hold_is_refused_before_inflating(
    tmp_path: Path, monkeypatch
) -> None:
    path = _gzip_header_only(tmp_path / "train-images-idx3-ubyte.gz", 400_000, bytes(10_000))
    monkeypatch.setattr(data.np, "empty", lambda *a, **k: pytest.fail("allocated the announced body"))
    with pytest.raises(DataError, match=r"header announces 400000 images .* can hold at most"):
        data.read_idx(path, data.IMAGES_MAGIC)


def test_an_idx_bomb_is_refused_by_its_count(tmp_path: Path) -> None:
    """A few megabytes of zeros inflate to gigabytes; a header asking for more than any data set is refused."""
    path = _gzip_header_only(tmp_path / "train-images-idx3-ubyte.gz", 8_000_000)
    with pytest.raises(DataError, match="more than the 500,000 a data set may have"):
        data.read_idx(path, data.IMAGES_MAGIC)


def test_a_body_longer_than_announced_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = _gzip_header_only(tmp_path / "x-images-idx3-ubyte.gz", 1, bytes(784 + 5_000_000))
    with pytest.raises(DataError, match=r"1048576\+ unexpected bytes after the 1 images"):
        data.read_idx(path, data.IMAGES_MAGIC)


def test_a_raw_header_announcing_more_than_the_file_holds_is_refused(tmp_path: Path) -> None:
    import struct

    path = tmp_path / "x-images-idx3-ubyte"
    path.write_bytes(struct.pack(">IIII", data.IMAGES_MAGIC, 400_000, 28, 28) + bytes(784))
    with pytest.raises(DataError, match="truncated: header announces 400000 images"):
        data.read_idx(path, data.IMAGES_MAGIC)


def test_blank_training_images_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "blank"
    folder.mkdir()
    for split in ("train", "t10k"):
        data.write_idx(folder / f"{split}-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
        data.write_idx(folder / f"{split}-labels-idx1-ubyte", np.arange(4, dtype=np.uint8))
    with pytest.raises(DataError, match="all the same shade"):
        data.load_folder(folder)


def test_the_built_in_sample_loads_without_any_network_or_cache(monkeypatch) -> None:
    monkeypatch.setattr(data, "download_dataset", lambda *a, **k: pytest.fail("tried a download"))
    sample = data.resolve("mnist-sample")
    assert sample.name == "mnist-sample" and len(sample.train) == 10_000 and len(sample.test) == 10_000
    assert sample.folder == data.SAMPLE_FOLDER and data.locate("mnist-sample") == data.SAMPLE_FOLDER
    assert data.DATASETS["mnist"].fallback == "mnist-sample"
