from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from engine import checkpoint as ckpt
from engine.config import TrainConfig
from engine.errors import CheckpointError, ConfigError
from engine.events import StepEvent, TrainingControl
from engine.training import Trainer

CONFIG = TrainConfig(model="lenet", epochs=2, batch_size=32, lr=3e-3, device="cpu", log_every=2)


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory) -> Path:
    trainer = Trainer(CONFIG, tiny_dataset)
    trainer.run()
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    ckpt.save(ckpt.trainer_payload(trainer, command="digit-studio train"), path)
    return path


def test_round_trip_keeps_every_field(trained: Path, tiny_dataset) -> None:
    raw = torch.load(trained, map_location="cpu", weights_only=True)
    loaded = ckpt.load(trained)
    assert raw["format_version"] == ckpt.FORMAT_VERSION
    assert loaded.architecture == "lenet" and loaded.config == CONFIG
    assert loaded.epochs_done == 2 and loaded.dataset_name == "mnist"
    assert loaded.class_names == tuple("0123456789")
    assert loaded.normalization == tiny_dataset.normalization
    assert len(loaded.history.epochs) == 2 and len(loaded.history.losses) == len(loaded.history.steps) == 10
    assert set(loaded.history.epochs[0]) >= {"epoch", "step", "train_loss", "test_loss", "test_accuracy", "seconds"}
    assert [e["step"] for e in loaded.history.epochs] == [10, 20]
    assert loaded.optimizer_state["state"] and loaded.scheduler_state["step"] == 20
    assert loaded.torch_version == torch.__version__ and loaded.created and loaded.command == "digit-studio train"
    for key, value in raw["model_state"].items():
        assert torch.equal(loaded.model.state_dict()[key], value)
    assert not loaded.model.training


def test_save_is_atomic_and_leaves_no_temporary(trained: Path, tmp_path: Path) -> None:
    target = tmp_path / "copy.pt"
    ckpt.save(ckpt.checkpoint_payload(ckpt.load(trained)), target)
    ckpt.save(ckpt.checkpoint_payload(ckpt.load(trained)), target)
    assert [p.name for p in tmp_path.iterdir()] == ["copy.pt"]
    assert ckpt.load(target).epochs_done == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_keeps_the_old_file(trained: Path, tmp_path: Path) -> None:
    _read_only_case(trained, tmp_path)


def test_failed_write_keeps_the_old_file(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk (or read-only folder, for root) mid-write: the old file stays, no temporary is left."""
    target = tmp_path / "model.pt"
    target.write_bytes(trained.read_bytes())
    before = target.read_bytes()

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(CheckpointError, match=r"cannot save .*model\.pt: No space left on device"):
        ckpt.save(ckpt.checkpoint_payload(ckpt.load(trained)), target)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def _read_only_case(trained: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    target = folder / "model.pt"
    target.write_bytes(trained.read_bytes())
    folder.chmod(0o500)
    try:
        with pytest.raises(CheckpointError, match="cannot save"):
            ckpt.save(ckpt.checkpoint_payload(ckpt.load(trained)), target)
    finally:
        folder.chmod(0o700)
    assert target.read_bytes() == trained.read_bytes()


def test_missing_folder_is_a_clear_error(trained: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="folder .* does not exist"):
        ckpt.save(ckpt.checkpoint_payload(ckpt.load(trained)), tmp_path / "no" / "x.pt")


def test_load_uses_the_safe_loader_on_the_cpu(trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    ckpt.load(trained)
    assert calls == [{"map_location": "cpu", "weights_only": True}]


def test_tensors_from_another_device_are_mapped_to_cpu(trained: Path, tmp_path: Path) -> None:
    """Whatever device a checkpoint was saved from, everything it loads lives on the CPU."""
    loaded = ckpt.load(trained)
    assert all(t.device.type == "cpu" for t in loaded.model.state_dict().values())
    assert all(
        t.device.type == "cpu"
        for s in loaded.optimizer_state["state"].values()
        for t in s.values()
        if isinstance(t, torch.Tensor)
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_checkpoint_loads_on_cpu(tiny_dataset, tmp_path: Path) -> None:
    trainer = Trainer(replace(CONFIG, device="cuda", epochs=1), tiny_dataset)
    trainer.run()
    payload = ckpt.trainer_payload(trainer)
    payload["model_state"] = {k: v.cuda() for k, v in payload["model_state"].items()}
    for state in payload["optimizer_state"]["state"].values():
        state.update({k: v.cuda() for k, v in state.items() if isinstance(v, torch.Tensor)})
    ckpt.save(payload, tmp_path / "gpu.pt")
    loaded = ckpt.load(tmp_path / "gpu.pt")
    assert all(t.device.type == "cpu" for t in loaded.model.state_dict().values())
    resumed = ckpt.resume_trainer(loaded, tiny_dataset, more_epochs=1, device="cpu")
    assert resumed.run().epochs_done == 2


def _moments_in_default_layout(payload: dict) -> dict:
    """The payload as a CUDA run writes it: optimiser state in PyTorch's default layout, where the CPU
    keeps convolution weights (and so their moments) channels-last."""
    import copy

    gpu_like = copy.deepcopy(payload)
    for state in gpu_like["optimizer_state"]["state"].values():
        state.update({k: v.contiguous() for k, v in state.items() if isinstance(v, torch.Tensor) and v.dim() == 4})
    return gpu_like


def test_optimiser_state_saved_in_another_memory_layout_resumes_exactly(tiny_dataset) -> None:
    """PyTorch's fused AdamW pairs moments and weights by memory position: moments in another layout than
    their weights silently updated the wrong weights (a checkpoint from a GPU run, resumed on the CPU)."""
    trainer = Trainer(replace(CONFIG, epochs=1), tiny_dataset)
    trainer.run()
    payload = ckpt.trainer_payload(trainer)
    moments = [s["exp_avg"] for s in payload["optimizer_state"]["state"].values() if s["exp_avg"].dim() == 4]
    assert any(not m.is_contiguous() for m in moments)  # conv2's are channels-last on this CPU run
    resumed = [
        ckpt.resume_trainer(ckpt.from_payload(p), tiny_dataset, more_epochs=1, device="cpu")
        for p in (payload, _moments_in_default_layout(payload))
    ]
    for trainer in resumed:
        trainer.run()
    same_layout, other_layout = (t.model.state_dict() for t in resumed)
    for key, value in same_layout.items():
        assert torch.equal(other_layout[key], value), key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_checkpoint_resumes_on_cuda_with_its_moments_in_the_weights_layout(tiny_dataset) -> None:
    """The other way round: channels-last moments from the CPU, default-layout weights on CUDA."""
    trainer = Trainer(replace(CONFIG, epochs=1), tiny_dataset)
    trainer.run()
    resumed = ckpt.resume_trainer(
        ckpt.from_payload(ckpt.trainer_payload(trainer)), tiny_dataset, more_epochs=1, device="cuda"
    )
    for param in resumed.model.parameters():
        for value in resumed.optimizer.state[param].values():
            if isinstance(value, torch.Tensor) and value.shape == param.shape:
                assert value.stride() == param.stride() and value.device == param.device
    assert resumed.run().epochs_done == 2 and resumed.graphed_step.captured


# --------------------------------------------------------------------------------------------- bad files


def test_truncated_file(trained: Path, tmp_path: Path) -> None:
    path = tmp_path / "t.pt"
    path.write_bytes(trained.read_bytes()[: trained.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"t\.pt: corrupt or truncated"):
        ckpt.load(path)


@pytest.mark.parametrize(
    ("fmt", "name", "kind"),
    [("torchscript", "model.pt", "TorchScript program"), ("pt2", "model.pt2", "torch.export program")],
)
def test_an_exported_program_is_named_as_such(trained: Path, tmp_path: Path, fmt: str, name: str, kind: str) -> None:
    """An export opened as a checkpoint had been called "corrupt or truncated"."""
    from engine.export import export

    path = export(ckpt.load(trained), fmt, tmp_path / name)
    with pytest.raises(
        CheckpointError,
        match=rf"{name}: a {kind} exported for other programs to run, not a "
        "checkpoint; open the checkpoint it was exported from",
    ):
        ckpt.load(path)


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        ckpt.load(path)


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    huge = tmp_path / "video.pt"
    with huge.open("wb") as handle:  # sparse: no disk space used
        handle.truncate(ckpt.MAX_CHECKPOINT_BYTES + 1)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("read a file far too large to be a checkpoint"))
    with pytest.raises(CheckpointError, match=r"video.pt: 64 MB, far larger than any Digit Studio checkpoint"):
        ckpt.load(huge)


def test_text_file_renamed(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("these are my notes, not a model\n")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        ckpt.load(path)


def test_random_bytes(tmp_path: Path) -> None:
    import random

    path = tmp_path / "random.pt"
    for seed in range(64):  # some random files start with bytes that look like pickle opcodes
        path.write_bytes(random.Random(seed).randbytes(4096))
        with pytest.raises(CheckpointError, match="not a checkpoint"):
            ckpt.load(path)


def test_plain_state_dict_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "sd.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not a Digit Studio checkpoint"):
        ckpt.load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such file"):
        ckpt.load(tmp_path / "nothing.pt")


def test_unknown_architecture(trained: Path, tmp_path: Path) -> None:
    payload = torch.load(trained, weights_only=True)
    payload["architecture"]["name"] = "transformer"
    torch.save(payload, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="unknown architecture 'transformer'"):
        ckpt.load(tmp_path / "x.pt")


def test_checkpoint_of_another_architecture(trained: Path, tmp_path: Path) -> None:
    payload = torch.load(trained, weights_only=True)
    payload["architecture"] = {"name": "digitnet", "kwargs": {}}
    torch.save(payload, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="weights do not fit architecture 'digitnet'.*missing weights"):
        ckpt.load(tmp_path / "x.pt")


def test_wrong_shape_lists_the_offending_keys(trained: Path, tmp_path: Path) -> None:
    payload = torch.load(trained, weights_only=True)
    payload["model_state"]["fc1.weight"] = torch.zeros(7, 7)
    torch.save(payload, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=r"shapes do not match: fc1\.weight \(7, 7\) vs \(120, 256\)"):
        ckpt.load(tmp_path / "x.pt")


def test_future_format_version(trained: Path, tmp_path: Path) -> None:
    payload = torch.load(trained, weights_only=True)
    payload["format_version"] = ckpt.FORMAT_VERSION + 1
    torch.save(payload, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="written by a newer Digit Studio"):
        ckpt.load(tmp_path / "x.pt")


class _Exploit:
    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("container", ["torch.save", "raw pickle"])
def test_malicious_pickle_never_runs(tmp_path: Path, container: str) -> None:
    marker = tmp_path / "pwned"
    _Exploit.marker = str(marker)
    path = tmp_path / "evil.pt"
    if container == "torch.save":
        torch.save({"format": ckpt.FORMAT, "payload": _Exploit()}, path)
    else:
        path.write_bytes(pickle.dumps({"payload": _Exploit()}))
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused: .*unsafe pickle"):
        ckpt.load(path)
    assert not marker.exists()


def test_checkpoint_zip_is_a_torch_archive(trained: Path) -> None:
    assert zipfile.is_zipfile(trained)


# --------------------------------------------------------------------------------------------- resume


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("schedule", ["onecycle", "step"])
def test_resume_gives_the_same_weights_as_training_straight_through(
    tiny_dataset, tmp_path: Path, schedule: str
) -> None:
    config = replace(CONFIG, epochs=3, augment=True, schedule=schedule, model="digitnet")
    straight = Trainer(config, tiny_dataset)
    straight.run()

    first = Trainer(config, tiny_dataset)
    control = TrainingControl()
    first.run(None, control, on_epoch_end=lambda t: control.stop() if t.epochs_done == 1 else None)
    assert first.epochs_done == 1
    path = ckpt.save(ckpt.trainer_payload(first), tmp_path / "a.pt")
    resumed = ckpt.resume_trainer(ckpt.load(path), tiny_dataset, more_epochs=2)
    resumed.run()

    assert resumed.epochs_done == 3
    assert resumed.history.steps == straight.history.steps
    assert [e["epoch"] for e in resumed.history.epochs] == [1, 2, 3]
    for key, value in _weights(straight.model).items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=1e-5, atol=1e-6)


def test_resume_takes_the_optimiser_implementation_of_this_device(trained: Path, tiny_dataset) -> None:
    """A state saved by a non-fused optimiser (another device, an older version) resumes fused here."""
    loaded = ckpt.load(trained)
    state = loaded.optimizer_state
    state = {**state, "param_groups": [{**g, "fused": None} for g in state["param_groups"]]}
    trainer = ckpt.resume_trainer(replace(loaded, optimizer_state=state), tiny_dataset, more_epochs=1)
    assert all(group["fused"] for group in trainer.optimizer.param_groups)
    trainer.run()
    assert trainer.epochs_done == 3


def test_resume_with_an_optimiser_state_that_does_not_fit_is_a_clear_error(trained: Path, tiny_dataset) -> None:
    loaded = ckpt.load(trained)
    sgd = replace(loaded.config, optimizer="sgd")  # the saved state is AdamW's: one group, other keys
    state = {**loaded.optimizer_state, "param_groups": loaded.optimizer_state["param_groups"] * 2}
    with pytest.raises(ConfigError, match="saved optimiser state does not fit a SGD optimiser"):
        ckpt.resume_trainer(replace(loaded, config=sgd, optimizer_state=state), tiny_dataset, more_epochs=1)


def test_resume_without_more_epochs_needs_unfinished_plan(trained: Path, tiny_dataset) -> None:
    with pytest.raises(CheckpointError, match="already trained 2 of its 2 planned epochs"):
        ckpt.resume_trainer(ckpt.load(trained), tiny_dataset)


def test_resume_appends_history(trained: Path, tiny_dataset) -> None:
    trainer = ckpt.resume_trainer(ckpt.load(trained), tiny_dataset, more_epochs=1)
    events = []
    trainer.run(events.append)
    assert [e["epoch"] for e in trainer.history.epochs] == [1, 2, 3]
    assert min(e.step for e in events if isinstance(e, StepEvent)) == 22


def test_resume_on_a_data_set_of_other_classes_is_refused(trained: Path, tmp_path: Path) -> None:
    from engine.data import load_folder
    from engine.errors import DataError
    from tests.helpers import write_dataset

    clothes = load_folder(write_dataset(tmp_path / "fashion-mnist"))
    with pytest.raises(DataError, match="model.pt recognises the MNIST .* holds the Fashion-MNIST"):
        ckpt.resume_trainer(ckpt.load(trained), clothes, more_epochs=1)


def test_a_checkpoint_records_the_folder_its_data_came_from_while_it_holds_the_files(tiny_data, tmp_path) -> None:
    import shutil

    from engine.data import load_folder

    folder = tmp_path / "my-digits"
    shutil.copytree(tiny_data, folder)
    trainer = Trainer(TrainConfig(model="lenet", epochs=1, batch_size=64, device="cpu"), load_folder(folder))
    trainer.run()
    path = ckpt.save(ckpt.trainer_payload(trainer), tmp_path / "a.pt")
    loaded = ckpt.load(path)
    assert loaded.dataset_folder == str(folder.resolve()) and loaded.data_folder() == folder.resolve()
    assert ckpt.trainer_payload(trainer, slim=True)["dataset"]["folder"] is None  # a shipped model: no local path
    again = ckpt.load(ckpt.save(ckpt.checkpoint_payload(loaded), tmp_path / "b.pt"))  # Save as keeps it
    assert again.dataset_folder == loaded.dataset_folder
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    assert loaded.data_folder() is None  # no longer holds the data set: the name decides, as before
    payload = torch.load(path, weights_only=True)
    del payload["dataset"]["folder"]  # a file written before checkpoints recorded it
    assert ckpt.from_payload(payload).data_folder() is None
