"""The model on hand (gui/model_on_hand.py): one answer, for Save, Continue, Evaluate, the canvas and the title."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import checkpoint as ckpt
from engine.inference import BUNDLED_MODEL, load_bundled
from gui.model_on_hand import ModelOnHand


@pytest.fixture(scope="module")
def opened() -> ckpt.Checkpoint:
    return ckpt.load(BUNDLED_MODEL)


def test_the_bundled_model_answers_but_is_not_saved(opened) -> None:
    model = ModelOnHand()
    model.use_bundled(load_bundled())
    assert model.predictor is not None and not model.can_save and model.payload() is None
    assert model.title() == "" and model.resume_source() is None and model.saved


def test_an_opened_checkpoint_saves_back_to_its_file(opened) -> None:
    model = ModelOnHand()
    model.open(opened)
    assert model.file == BUNDLED_MODEL and model.saved and model.title() == BUNDLED_MODEL.name
    assert model.resume_source() is opened and model.payload()["epochs_done"] == opened.epochs_done


def test_a_new_run_never_saves_over_the_previous_models_file(opened) -> None:
    model = ModelOnHand()
    model.open(opened)
    version = model.version
    model.start_run(continuing=False)
    assert model.file is None
    assert model.version == version and model.checkpoint is opened  # nothing changes before an epoch is done
    model.epoch_done(opened, "training run (digitnet, 1 of 3 epochs)")
    assert model.version == version + 1 and not model.saved and model.title() == "unsaved model"
    assert model.predictor.source == "training run (digitnet, 1 of 3 epochs)"
    model.saved_to(Path("/tmp/mine.pt"))
    assert model.saved and model.title() == "mine.pt"


def test_a_continued_run_goes_back_to_its_own_file(opened) -> None:
    model = ModelOnHand()
    model.open(opened)
    model.start_run(continuing=True)
    model.epoch_done(opened, "training run")
    assert model.file == BUNDLED_MODEL and not model.saved
