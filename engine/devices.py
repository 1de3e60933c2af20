"""Which compute devices exist, and turning a user's device name into a ``torch.device``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import torch

from engine.errors import DeviceError

DEVICE_NAME = re.compile(r"cpu|cuda:\d+|mps")  # the names list_devices can offer


@dataclass(frozen=True)
class DeviceInfo:
    """A device the user can pick: ``name`` is what ``--device`` takes, ``description`` what people read."""

    name: str
    description: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "description": self.description}


def _mps_works() -> bool:
    """``torch.backends.mps.is_available()`` can be true where MPS still fails, so run a tiny op."""
    backend = getattr(torch.backends, "mps", None)
    if backend is None or not backend.is_available():
        return False
    try:
        return bool((torch.ones(2, device="mps") * 2).sum().item() == 4)
    except Exception:  # any failure means the device is not usable; the reason does not matter here
        return False


@lru_cache(maxsize=1)
def list_devices() -> tuple[DeviceInfo, ...]:
    """Every usable device, best last-resort first: ``cpu``, then each ``cuda:N``, then ``mps``."""
    import os

    devices = [DeviceInfo("cpu", f"CPU ({os.cpu_count()} cores)")]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            memory = props.total_memory / 2**30
            devices.append(DeviceInfo(f"cuda:{index}", f"{props.name} ({memory:.0f} GiB)"))
    if _mps_works():
        devices.append(DeviceInfo("mps", "Apple GPU (MPS)"))
    return tuple(devices)


def best_device(devices: Iterable[DeviceInfo] | None = None) -> str:
    """What ``auto`` means: the first CUDA GPU, else MPS, else the CPU (of ``devices``, or of this computer)."""
    names = [d.name for d in (list_devices() if devices is None else devices)]
    for preferred in ("cuda:0", "mps"):
        if preferred in names:
            return preferred
    return "cpu"


def resolve_device(name: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` (= ``cuda:0``), ``cuda:N`` or ``mps``; anything unavailable is a DeviceError."""
    wanted = (name or "auto").strip().lower()
    if wanted == "auto":
        wanted = best_device()
    if wanted == "cuda":
        wanted = "cuda:0"
    available = [d.name for d in list_devices()]
    if not DEVICE_NAME.fullmatch(wanted):
        raise DeviceError(
            f"unknown device '{name}': use auto, cpu, cuda, cuda:N or mps (available here: {', '.join(available)})"
        )
    if wanted not in available:
        raise DeviceError(f"device '{name}' is not available on this computer (available: {', '.join(available)})")
    return torch.device(wanted)


def copy_to(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device``: asynchronously to a CUDA device, synchronously elsewhere.

    CUDA orders a non-blocking copy from the host before the work that follows it on the stream, and
    stages pageable memory before returning, so the source may be freed at once. MPS may read a
    non-blocking copy's source after it has been released and silently deliver garbage
    (pytorch/pytorch#139550 and #189690, both open), so every other device copies synchronously.
    """
    return tensor.to(device, non_blocking=device.type == "cuda")
