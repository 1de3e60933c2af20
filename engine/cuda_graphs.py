"""Training steps replayed from a CUDA graph.

The models here are so small that a GPU training step is bound by kernel launches, not arithmetic:
LeNet at batch 128 took 1.7 ms per eager step on an H200 and 0.3 ms replayed from a graph
(tools/cuda_step_profile.py). A graph records a whole step once (in the Trainer: the batch's conversion,
augmentation and normalisation, forward, loss, backward and optimiser step), with fixed input buffers,
and replays it with one launch.

What that needs from the rest of the training loop, and gets:
- Fixed addresses: a step's inputs (the raw batch, its labels, its augmentation's random numbers) are
  copied into ``static_inputs``; gradients are zeroed, never set to None; the learning rate is a tensor
  on the device that the loop fills before each step.
- Fixed shapes: a batch of another size (an epoch's last, short batch) runs eagerly on the same
  model, optimiser and gradient tensors.
- Optimiser state that exists before capture: the first ``WARMUP`` steps run eagerly on a side
  stream (as PyTorch's documentation asks), and they are real training steps, not thrown away.
If capture fails, the run goes on eagerly; ``failure`` says why, and ``on_fallback`` is told once, so the
user learns why training is slower than it should be.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import nn

StepFunction = Callable[..., torch.Tensor]  # (*input tensors) -> loss
T = TypeVar("T")


class GraphedStep:
    """``step(*inputs) -> loss``: the eager ``step`` until captured, then the graph's replay.

    ``inputs`` gives the shape and dtype of each input the graph is for; calls with inputs of other
    shapes run eagerly. Inputs may be on the device or in pinned host memory (copied asynchronously).
    """

    WARMUP = 3

    def __init__(
        self,
        step: StepFunction,
        inputs: Sequence[tuple[Sequence[int], torch.dtype]],
        device: torch.device,
        on_fallback: Callable[[str], None] | None = None,
    ) -> None:
        self.step = step
        self.on_fallback = on_fallback
        self.static_inputs = tuple(torch.zeros(tuple(shape), dtype=dtype, device=device) for shape, dtype in inputs)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_loss: torch.Tensor | None = None
        self.warm_steps = 0
        self.failure: str | None = None

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.failure is not None or any(i.shape != s.shape for i, s in zip(inputs, self.static_inputs, strict=True)):
            return self.step(*inputs)
        for static, value in zip(self.static_inputs, inputs):
            static.copy_(value, non_blocking=True)
        if self.graph is None:
            if self.warm_steps < self.WARMUP:
                self.warm_steps += 1
                return self._warm_up()
            try:
                self._capture()
            except Exception as exc:  # any capture failure: keep training, eagerly
                self.graph = None
                self.failure = f"{type(exc).__name__}: {exc}"
                if self.on_fallback is not None:
                    self.on_fallback(self.failure)
                return self.step(*inputs)
        assert self.graph is not None and self.static_loss is not None  # captured above
        self.graph.replay()
        return self.static_loss

    def _warm_up(self) -> torch.Tensor:
        return on_side_stream(lambda: self.step(*self.static_inputs))

    def _capture(self) -> None:
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.current_stream()
        try:
            # thread_local: the GUI may touch CUDA from other threads (evaluation) while this one captures
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self.static_loss = self.step(*self.static_inputs)
        finally:
            # When ending a failed capture raises, torch.cuda.graph leaves its capture stream current
            # for this thread; the eager steps that follow belong on the stream they used before.
            torch.cuda.set_stream(stream)
        self.graph = graph  # capture only records the step: the replay that follows runs it


def on_side_stream(work: Callable[[], T]) -> T:
    """``work()`` on a fresh side stream, ordered after the current stream's work and before what follows
    on it: where PyTorch's documentation asks for the eager warm-up steps that precede a capture."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        result = work()
    torch.cuda.current_stream().wait_stream(side)
    return result


def make_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    keep_grads: bool = False,
    count_correct: bool = False,
) -> StepFunction:
    """One eager training step; ``keep_grads`` zeroes gradients in place instead of freeing them,
    which a graph needs (their addresses are part of it). It returns the loss, or with ``count_correct``
    the loss and the number of the batch's samples the model got right, as one 2-element tensor (no
    read-back: that would stall a GPU every step)."""

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=not keep_grads)
        logits = model(x)
        loss = loss_fn(logits, y)
        loss.backward()
        optimizer.step()
        if count_correct:
            return torch.stack((loss.detach(), (logits.detach().argmax(1) == y).sum().to(loss.dtype)))
        return loss.detach()

    return step
