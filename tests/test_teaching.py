"""Teaching a model personal samples (engine/teaching.py, `digit-studio teach`): the samples folder is read
as the canvas reads drawings, bad input is one clear error, and the taught model is a checkpoint like any
other that records how it was taught; the base model file is never changed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine import checkpoint as ckpt
from engine.cli import main
from engine.errors import DataError
from engine.inference import BUNDLED_MODEL
from engine.teaching import hold_out, load_samples, teach
from tests.writer_digits import write_samples

DIGITS = tuple(str(i) for i in range(10))


@pytest.fixture(scope="module")
def samples_folder(tmp_path_factory) -> Path:
    return write_samples(tmp_path_factory.mktemp("writer") / "samples", per_digit=5, seed=3)


def test_samples_are_read_as_drawings_and_bad_files_are_skipped_and_counted(samples_folder, tmp_path) -> None:
    folder = tmp_path / "mine"
    for digit in ("3", "8"):
        (folder / digit).mkdir(parents=True)
        for i in range(2):
            (folder / digit / f"{i}.png").write_bytes((samples_folder / digit / f"00{i}.png").read_bytes())
    (folder / "3" / "broken.png").write_bytes(b"not an image")
    Image.fromarray(np.full((50, 50), 255, np.uint8)).save(folder / "8" / "blank.png")
    samples = load_samples(folder, DIGITS)
    assert len(samples) == 4 and samples.skipped == 2
    assert samples.images.dtype.is_floating_point is False and samples.images.shape == (4, 28, 28)
    assert sorted(samples.labels.tolist()) == [3, 3, 8, 8]


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({}, "holds no readable samples"),
        ({"7": 3}, "one class only"),
        ({"seven": 2, "1": 2}, "not classes of the model"),
    ],
)
def test_bad_sample_folders_are_one_clear_error(samples_folder, tmp_path, layout, message) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    for name, count in layout.items():
        (folder / name).mkdir()
        for i in range(count):
            (folder / name / f"{i}.png").write_bytes((samples_folder / "1" / "000.png").read_bytes())
    with pytest.raises(DataError, match=message):
        load_samples(folder, DIGITS)


def test_some_of_each_class_is_held_out_for_the_before_and_after_figures(samples_folder) -> None:
    samples = load_samples(samples_folder, DIGITS)
    train, held = hold_out(samples)
    assert len(set(train) & set(held)) == 0 and len(train) + len(held) == len(samples) == 50
    assert sorted(set(samples.labels[held].tolist())) == list(range(10))  # every class has one held out


def test_teaching_gives_a_checkpoint_that_records_it_and_keeps_what_the_model_knew(
    samples_folder, tiny_dataset
) -> None:
    base = ckpt.load(BUNDLED_MODEL)
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    result = teach(base, load_samples(samples_folder, DIGITS), tiny_dataset, steps=8)
    taught = ckpt.from_payload(result.payload)
    assert taught.taught["samples"] == 50 and taught.taught["steps"] == 8 and taught.taught["held_out"] == 10
    assert 0 <= taught.taught["base_accuracy"] <= 1 and 0 <= taught.taught["taught_accuracy"] <= 1
    assert taught.optimizer_state is None and taught.architecture == base.architecture
    assert any(not np.array_equal(taught.model.state_dict()[k], v) for k, v in before.items() if v.is_floating_point())
    assert all(np.array_equal(base.model.state_dict()[k], v) for k, v in before.items())  # the base is untouched


def test_the_teach_command(samples_folder, tmp_path, capsys) -> None:
    digest = hashlib.sha256(BUNDLED_MODEL.read_bytes()).hexdigest()
    out = tmp_path / "mine.pt"
    assert main(["teach", str(samples_folder), "--out", str(out), "--steps", "5", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["samples"] == 50 and summary["checkpoint"] == str(out) and summary["held_out"] == 10
    assert {"seconds", "base", "base_accuracy", "taught_accuracy"} <= set(summary)
    assert ckpt.load(out).taught["base"] == "bundled model"
    assert hashlib.sha256(BUNDLED_MODEL.read_bytes()).hexdigest() == digest
    assert main(["predict", "--checkpoint", str(out), str(samples_folder / "3" / "000.png")]) == 0
    assert main(["teach", str(samples_folder), "--out", str(BUNDLED_MODEL)]) == 2  # never over the base
    assert "which this command reads" in capsys.readouterr().err


def test_teach_never_writes_over_the_data_it_replays_or_a_sample_behind_a_linked_folder(
    samples_folder, tiny_data, tmp_path, capsys
) -> None:
    from tests.test_cli import FAST

    base = tmp_path / "base.pt"
    assert main(["train", "--data", str(tiny_data), "--epochs", "1", "--out", str(base), "--no-record", *FAST]) == 0
    images = next(tiny_data.glob("train-images*"))
    before = images.read_bytes()
    assert main(["teach", str(samples_folder), "--checkpoint", str(base), "--out", str(images), "--steps", "2"]) == 2
    assert "which this command reads" in capsys.readouterr().err and images.read_bytes() == before
    linked = tmp_path / "linked"
    linked.mkdir()
    for digit in ("3", "4"):
        (linked / digit).symlink_to(samples_folder / digit, target_is_directory=True)
    sample = samples_folder / "3" / "001.png"
    kept = sample.read_bytes()
    assert main(["teach", str(linked), "--out", str(sample), "--steps", "2"]) == 2
    assert "which this command reads" in capsys.readouterr().err and sample.read_bytes() == kept
