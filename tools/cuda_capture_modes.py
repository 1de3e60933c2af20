"""Which CUDA graph capture mode lets another thread use the GPU while a training step is captured.

    python tools/cuda_capture_modes.py

The app predicts and evaluates on the GPU from other threads while the training thread may be
capturing its step (engine/cuda_graphs.py). For each of torch.cuda.graph's capture_error_mode values,
in a fresh process each (a failed capture can leave a process's CUDA state unusable), one thread
captures a small training step and holds the capture open while a second thread copies a tensor in,
runs a kernel and reads the result back. Prints one line per mode: whether the capture and the other
thread's work succeeded, and the error of each that did not.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODES = ("global", "thread_local", "relaxed")


def attempt(mode: str) -> None:
    import torch
    from torch import nn
    from torch.nn import functional as F

    from engine.cuda_graphs import on_side_stream

    model = nn.Linear(20, 4).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(16, 20, device="cuda"), torch.randint(0, 4, (16,), device="cuda")

    def step() -> None:
        optimizer.zero_grad(set_to_none=False)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    on_side_stream(lambda: [step() for _ in range(3)])

    capturing, other_done = threading.Event(), threading.Event()
    other: dict[str, str] = {}

    def other_thread() -> None:
        try:
            capturing.wait(20)
            total = float((torch.arange(1000.0).cuda() * 2).sum())
            other["result"] = "ok" if total == 999000.0 else f"wrong sum {total}"
        except Exception as exc:
            other["result"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        finally:
            other_done.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph, capture_error_mode=mode):
            step()
            capturing.set()
            other_done.wait(20)
        graph.replay()
        torch.cuda.synchronize()
        captured = "ok"
    except Exception as exc:
        captured = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    capturing.set()
    thread.join(20)
    print(f"{mode:13s} capture: {captured} | other thread: {other.get('result', 'did not finish')}")


def main() -> None:
    if len(sys.argv) > 1:
        attempt(sys.argv[1])
        return
    for mode in MODES:
        try:
            done = subprocess.run([sys.executable, __file__, mode], timeout=120)
            if done.returncode:
                print(f"{mode:13s} process exited with status {done.returncode}")
        except subprocess.TimeoutExpired:
            print(f"{mode:13s} hung (killed after 120 s)")


if __name__ == "__main__":
    main()
