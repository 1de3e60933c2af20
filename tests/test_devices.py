from __future__ import annotations

import pytest
import torch

from engine.devices import copy_to, resolve_device
from engine.errors import DeviceError


class RecordsCopies(torch.Tensor):
    """A tensor that notes how it is asked to move instead of moving, so any device can be named."""

    non_blocking: list[bool] = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.Tensor.to:
            cls.non_blocking.append(bool((kwargs or {}).get("non_blocking", False)))
            return args[0]
        return super().__torch_function__(func, types, args, kwargs)


@pytest.mark.parametrize(("device", "asynchronous"), [("cuda", True), ("cuda:1", True), ("mps", False), ("cpu", False)])
def test_copies_are_asynchronous_only_to_cuda(device: str, asynchronous: bool) -> None:
    """MPS can deliver garbage from a non-blocking copy whose source is freed early (see copy_to)."""
    RecordsCopies.non_blocking = []
    copy_to(torch.zeros(3).as_subclass(RecordsCopies), torch.device(device))
    assert RecordsCopies.non_blocking == [asynchronous]


def test_copy_to_the_same_device_keeps_the_tensor() -> None:
    tensor = torch.arange(4)
    assert copy_to(tensor, torch.device("cpu")) is tensor


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("tpu", "unknown device 'tpu': use auto, cpu, cuda, cuda:N or mps"),
        ("cuda:x", "unknown device 'cuda:x'"),
        ("cuda:97", "device 'cuda:97' is not available on this computer"),
    ],
)
def test_a_device_name_that_cannot_be_used_says_whether_it_is_unknown_or_absent(name: str, problem: str) -> None:
    with pytest.raises(DeviceError, match=problem) as error:
        resolve_device(name)
    assert "cpu" in str(error.value)  # and what is available instead


@pytest.mark.parametrize("name", ["CPU", " cpu ", "Cpu"])
def test_device_names_are_forgiving_about_case_and_spaces(name: str) -> None:
    assert resolve_device(name) == torch.device("cpu")


@pytest.fixture
def two_gpus_and_mps(monkeypatch):
    """A machine with two CUDA GPUs and a working MPS, as the engine's device code sees it."""
    from types import SimpleNamespace

    import engine.devices

    names = ["NVIDIA H200", "NVIDIA H100 80GB HBM3"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(
        torch.cuda,
        "get_device_properties",
        lambda index: SimpleNamespace(name=names[index], total_memory=(140, 80)[index] * 2**30),
    )
    monkeypatch.setattr(engine.devices, "_mps_works", lambda: True)
    engine.devices.list_devices.cache_clear()
    yield
    engine.devices.list_devices.cache_clear()


def test_every_gpu_is_offered_by_name_and_auto_prefers_the_first_cuda_one(two_gpus_and_mps) -> None:
    from engine.devices import best_device, list_devices

    assert [(d.name, d.description) for d in list_devices()] == [
        ("cpu", list_devices()[0].description),
        ("cuda:0", "NVIDIA H200 (140 GiB)"),
        ("cuda:1", "NVIDIA H100 80GB HBM3 (80 GiB)"),
        ("mps", "Apple GPU (MPS)"),
    ]
    assert best_device() == "cuda:0"
    assert resolve_device("cuda") == resolve_device("auto") == torch.device("cuda:0")
    assert resolve_device("CUDA:1") == torch.device("cuda:1") and resolve_device("mps") == torch.device("mps")
    with pytest.raises(DeviceError, match="device 'cuda:2' is not available .*cpu, cuda:0, cuda:1, mps"):
        resolve_device("cuda:2")
