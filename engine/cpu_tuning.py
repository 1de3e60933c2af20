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
    is built: 0.9 s and about 120,000 new Python objects on this project's 2-core machine. The app calls
    this on a background thread once its window is up, so that pressing Train starts training at once.
    It also builds (first run on a machine: about half a second) or loads LeNet's fused CPU kernel.
    """
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    lenet_features.kernel_status()


@contextlib.contextmanager
def cpu_threads_for(trainer: Any) -> Iterator[None]:
    """At most one intra-op thread per two samples of a batch, while a CPU run lasts.

    PyTorch uses every core by default; for small batches an OpenMP region over all of them costs more
    than it saves. On a 16-core machine (benchmarks/bench_threads.py, median of 3 interleaved rounds)
    LeNet at the tutorial's batch 8 trained at 5,558 samples/s with 4 threads, 4,778 with 8 and 2,683
    with 16; from batch 16 up more threads were faster or within 4 %, and on 2 cores 2 threads were never
    slower than 1, even at batch 4. Since LeNet's small batches use PyTorch's own convolutions the penalty
    is smaller (session 10, same machine: 4 threads within 8 % of the best count, every core up to 13 %
    slower than 4), so the cap still pays. A caller's own lower setting is kept (the app leaves a core to its
    GUI thread where it cannot lower the training thread's priority). OpenMP thread counts are per
    calling thread.
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
