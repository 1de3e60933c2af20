"""How a CPU run uses the machine: intra-op threads for small batches, and the one-off start-up work done
ahead of time."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from engine import lenet_features


def warm_up() -> None:
    """Do ahead of time the one-off work that would otherwise delay a process's first training run.

    PyTorch imports ``torch._dynamo`` (sympy and some 900 modules with it) the first time any optimiser
    is built: 0.9 s and about 120,000 new Python objects on a 2-core CPU. The app calls
    this on a background thread once its window is up, so that pressing Train starts training at once.
    It also builds (first run on a machine: about half a second) or loads LeNet's fused CPU kernel.
    """
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    lenet_features.kernel_status()


@contextlib.contextmanager
def cpu_threads_for(trainer: Any) -> Iterator[None]:
    """At most one intra-op thread per two samples of a batch, while a CPU run lasts.

    PyTorch uses every core by default; for small batches an OpenMP region over all of them costs more
    than it saves: on 16 cores the cap costs at most 8 % against the best thread count and saves up to
    13 % against every core (benchmarks/bench_threads.py; docs/performance.md). A caller's own lower
    setting is kept (the app leaves a core to its GUI thread where it cannot lower the training thread's
    priority). OpenMP thread counts are per calling thread.
    """
    before = torch.get_num_threads()
    wanted = max(1, min(before, trainer.config.batch_size // 2))
    if trainer.device.type != "cpu" or wanted == before:
        yield
        return
    torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(before)
