"""LeNet's convolutional part -- conv1, max-pool, ReLU, conv2, max-pool, ReLU -- as one fused CPU kernel.

Why: on a CPU these layers were most of a LeNet training step, waiting on memory traffic and per-operator
overhead rather than arithmetic (docs/performance.md, benchmarks/bench_training.py). ``engine/native/
lenet_features.c`` computes them in one pass per 16 images that never writes an unpooled convolution
output, and a backward that goes from the gradient of the flattened features straight to the four
parameters' gradients.

The kernel is registered as two PyTorch operators (``torch.library.custom_op``, with an autograd formula
and fake implementations), so autograd, ``torch.func``, tracing and FakeTensor treat it as any other
operator. LeNet's ``forward`` is plain PyTorch unless its ``fused`` flag is set, which the Trainer does
for CPU training. The function is the same as the plain operators' up to float rounding
(tests/test_lenet_features.py compares values and gradients, ties and NaNs included).
"""

from __future__ import annotations

import ctypes
import platform
import threading
from typing import Any, Literal, cast, overload

import torch
import torch.nn.functional as F
from torch import nn

from engine import native_library

LIBRARY = "lenet_features"
KERNEL = 5
CHANNELS1, CHANNELS2 = 6, 16  # compile-time constants of the kernel (its C1 and C2)
# Below this batch size the fused path's fixed costs (a Python autograd function, workspaces, ctypes
# calls, a 16-image chunk a few images fill) outweigh what it saves, and PyTorch's own small-batch
# convolutions are faster: LeNet in the Trainer trained 0.95x as fast with the kernel at batch 4,
# 1.08-1.11x at 5, 1.05x at 6, 1.2x at 8 (docs/performance.md).
MIN_BATCH = 5
# Where the kernel was measured faster than the plain operators: on x86-64, built for AVX-512 (16 lanes),
# AVX2 (8) and SSE (4) alike (docs/performance.md). Elsewhere (ARM's NEON) no one has measured it yet, so
# the plain operators run there.
MEASURED_MACHINES = ("x86_64", "amd64")
MACHINE = platform.machine()

_i64, _ptr = ctypes.c_int64, ctypes.c_void_p


@overload
def kernel_status(build: Literal[True] = ...) -> native_library.NativeLibrary: ...
@overload
def kernel_status(build: bool) -> native_library.NativeLibrary | None: ...
def kernel_status(build: bool = True) -> native_library.NativeLibrary | None:
    """Whether the fused kernel is in use on this machine, and if not, why. With ``build`` False, None
    where this process has not built or loaded it yet (instead of compiling it now)."""
    if MACHINE.lower() not in MEASURED_MACHINES:
        return native_library.NativeLibrary(
            LIBRARY, None, reason=f"not yet measured against PyTorch's own operators on {MACHINE}"
        )
    loaded = native_library.load(LIBRARY) if build else native_library.loaded(LIBRARY)
    if loaded is None:
        return None
    lib = loaded.library
    if lib is not None and not hasattr(lib, "lanes"):
        lib.lenet_features_forward.argtypes = [_ptr, _i64, _i64, _i64] + [_ptr] * 10  # type: ignore[assignment]
        lib.lenet_features_forward.restype = ctypes.c_int
        lib.lenet_features_backward.argtypes = [_ptr] * 6 + [_i64] * 3 + [_ptr] * 6
        lib.lenet_features_backward.restype = ctypes.c_int
        lib.lanes = lib.lenet_features_lanes()  # type: ignore[attr-defined]
    return loaded


def _library() -> ctypes.CDLL | None:
    status = kernel_status()
    return status.library if status is not None else None


def plain_features(x: torch.Tensor, conv1: nn.Conv2d, conv2: nn.Conv2d) -> torch.Tensor:
    # max-pooling before each ReLU: the same values (both are monotone) for a quarter of the ReLU work
    x = F.relu(F.max_pool2d(conv1(x), 2))
    return torch.flatten(F.relu(F.max_pool2d(conv2(x), 2)), 1)


def _applies(x: torch.Tensor, conv1: nn.Conv2d, conv2: nn.Conv2d) -> bool:
    """Whether the kernel computes these features: CPU float32 images of one channel, at least 16 pixels a
    side and MIN_BATCH of them, LeNet's layer sizes, no gradient wanted for the images themselves (the
    kernel's backward gives the parameters' only), no autocast, no torch.func transform. Tracers, export
    and FakeTensor see the registered operator (its fake implementation), so they need no test here."""
    params = (conv1.weight, conv1.bias, conv2.weight, conv2.bias)
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.dim() == 4
        and x.shape[1] == 1
        and x.shape[0] >= MIN_BATCH
        and min(x.shape[2], x.shape[3]) >= 16  # both poolings still have an output
        and not x.requires_grad
        and all(p is not None and p.device.type == "cpu" and p.dtype == torch.float32 for p in params)
        and conv1.weight.shape == (CHANNELS1, 1, KERNEL, KERNEL)
        and conv2.weight.shape == (CHANNELS2, CHANNELS1, KERNEL, KERNEL)
        and all(
            c.stride == (1, 1) and c.padding == (0, 0) and c.dilation == (1, 1) and c.groups == 1
            for c in (conv1, conv2)
        )
        and not torch.is_autocast_enabled("cpu")
        # torch.func transforms need an autograd.Function with setup_context; a custom operator's
        # registered autograd formula is not one, so under grad or vmap the plain operators run
        and torch._C._functorch.maybe_current_level() is None
    )


def features(x: torch.Tensor, conv1: nn.Conv2d, conv2: nn.Conv2d, fused: bool = False) -> torch.Tensor:
    """flatten(relu(max_pool2d(conv2(relu(max_pool2d(conv1(x), 2))), 2))); with ``fused``, through the
    ``digit_studio::lenet_features`` operator where the kernel applies and is built (the Trainer opts in
    for CPU training), else plain PyTorch."""
    if fused and _applies(x, conv1, conv2) and _library() is not None:
        return torch.ops.digit_studio.lenet_features(x, conv1.weight, conv1.bias, conv2.weight, conv2.bias)[0]
    return plain_features(x, conv1, conv2)


_workspaces = threading.local()


def _workspace(name: str, *shape: int) -> torch.Tensor:
    """Scratch memory the kernel overwrites, reused from step to step (per thread: the app may evaluate on
    one thread while it trains on another). Allocated afresh each step, these 3 MB at batch 128 came back
    from the C library as new pages, some 100 page faults a step (about 7 % of a step, measured)."""
    cache = _workspaces.__dict__
    tensor = cache.get(name)
    if tensor is None or tuple(tensor.shape) != shape:
        tensor = cache[name] = torch.empty(shape)
    return tensor


def _check(status: int) -> None:
    if status != 0:  # _applies checked the sizes; this would be a kernel out of step with it
        raise RuntimeError(f"the {LIBRARY} kernel refused its input (status {status})")


class _Sizes:
    """The kernel's sizes for one input: pooled conv1 output P1, conv2 output Q, pooled again P2."""

    def __init__(self, batch: int, height: int, width: int, lanes: int) -> None:
        self.batch, self.height, self.width, self.lanes = batch, height, width, lanes
        self.chunks = -(-batch // lanes)
        self.p1h, self.p1w = (height - KERNEL + 1) // 2, (width - KERNEL + 1) // 2
        self.qh, self.qw = self.p1h - KERNEL + 1, self.p1w - KERNEL + 1
        self.features = CHANNELS2 * (self.qh // 2) * (self.qw // 2)


# The kernel as two PyTorch operators, so that autograd, torch.func, tracing and FakeTensor treat it like
# any built-in operator. The forward returns what the backward needs besides its result: the images in
# the kernel's lane layout, conv1's pooled output, and both poolings' argmax indices.


@torch.library.custom_op("digit_studio::lenet_features", mutates_args=(), device_types="cpu")
def _forward(
    x: torch.Tensor, weight1: torch.Tensor, bias1: torch.Tensor, weight2: torch.Tensor, bias2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    lib = _library()
    if lib is None:
        raise RuntimeError(f"the {LIBRARY} kernel is not built: {kernel_status().describe()}")
    s = _Sizes(x.shape[0], x.shape[2], x.shape[3], cast(int, lib.lanes))
    out, lanes, hidden, index1, index2 = _forward_buffers(s)
    x = x.contiguous()
    w1 = weight1.reshape(CHANNELS1, KERNEL * KERNEL).contiguous()
    w2 = weight2.permute(1, 2, 3, 0).contiguous()  # (C1, 5, 5, C2): see the kernel
    b1, b2 = bias1.contiguous(), bias2.contiguous()
    pooled = _workspace("pooled", s.chunks, s.features, s.lanes)
    _check(
        lib.lenet_features_forward(
            x.data_ptr(),
            s.batch,
            s.height,
            s.width,
            w1.data_ptr(),
            b1.data_ptr(),
            w2.data_ptr(),
            b2.data_ptr(),
            out.data_ptr(),
            lanes.data_ptr(),
            hidden.data_ptr(),
            index1.data_ptr(),
            index2.data_ptr(),
            pooled.data_ptr(),
        )
    )
    return out, lanes, hidden, index1, index2


def _forward_buffers(s: _Sizes, like: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    empty = torch.empty if like is None else like.new_empty
    return (
        empty((s.batch, s.features)),
        empty((s.chunks, s.height * s.width, s.lanes)),
        empty((s.chunks, CHANNELS1, s.p1h * s.p1w, s.lanes)),
        empty((s.chunks, CHANNELS1, s.p1h * s.p1w, s.lanes), dtype=torch.uint8),
        empty((s.chunks, s.features, s.lanes), dtype=torch.uint8),
    )


@_forward.register_fake
def _forward_fake(x, weight1, bias1, weight2, bias2):  # noqa: ANN001 - the fake mirrors the operator
    lib = _library()
    return _forward_buffers(_Sizes(x.shape[0], x.shape[2], x.shape[3], lib.lanes if lib else 16), like=x)


@torch.library.custom_op("digit_studio::lenet_features_backward", mutates_args=(), device_types="cpu")
def _backward(
    grad: torch.Tensor,
    weight2: torch.Tensor,
    lanes: torch.Tensor,
    hidden: torch.Tensor,
    index1: torch.Tensor,
    index2: torch.Tensor,
    height: int,
    width: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    lib = _library()
    assert lib is not None  # the forward pass ran the kernel
    s = _Sizes(grad.shape[0], height, width, lanes.shape[-1])
    grad = grad.contiguous()
    w2 = weight2.permute(0, 2, 3, 1).contiguous()  # (C2, 5, 5, C1): see the kernel
    grads1 = torch.empty(CHANNELS1, KERNEL * KERNEL + 1)  # each row: 25 weights, then the bias
    grads2 = torch.empty(CHANNELS2, CHANNELS1 * KERNEL * KERNEL + 1)
    # conv2's output gradient has its rows padded with KERNEL - 1 zero columns on each side
    grad_lanes2 = _workspace("grad_lanes2", s.chunks, CHANNELS2, s.qh, s.qw + 2 * (KERNEL - 1), s.lanes)
    grad_lanes1 = _workspace("grad_lanes1", s.chunks, CHANNELS1, s.p1h * s.p1w, s.lanes)
    partial1 = _workspace("partial1", s.chunks, *grads1.shape, s.lanes)
    partial2 = _workspace("partial2", s.chunks, *grads2.shape, s.lanes)
    _check(
        lib.lenet_features_backward(
            grad.data_ptr(),
            w2.data_ptr(),
            lanes.data_ptr(),
            hidden.data_ptr(),
            index1.data_ptr(),
            index2.data_ptr(),
            s.batch,
            s.height,
            s.width,
            grad_lanes2.data_ptr(),
            grad_lanes1.data_ptr(),
            partial1.data_ptr(),
            partial2.data_ptr(),
            grads1.data_ptr(),
            grads2.data_ptr(),
        )
    )
    return (
        grads1[:, :-1].reshape(CHANNELS1, 1, KERNEL, KERNEL).clone(),
        grads1[:, -1].clone(),
        grads2[:, :-1].reshape(CHANNELS2, CHANNELS1, KERNEL, KERNEL).clone(),
        grads2[:, -1].clone(),
    )


@_backward.register_fake
def _backward_fake(grad, weight2, lanes, hidden, index1, index2, height, width):  # noqa: ANN001
    return (
        grad.new_empty((CHANNELS1, 1, KERNEL, KERNEL)),
        grad.new_empty((CHANNELS1,)),
        grad.new_empty((CHANNELS2, CHANNELS1, KERNEL, KERNEL)),
        grad.new_empty((CHANNELS2,)),
    )


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
    x, _, _, weight2, _ = inputs
    _, lanes, hidden, index1, index2 = output
    ctx.save_for_backward(weight2, lanes, hidden, index1, index2)
    ctx.mark_non_differentiable(lanes, hidden, index1, index2)
    ctx.size = (x.shape[2], x.shape[3])


def _gradients(ctx: Any, grad: torch.Tensor, *unused: Any) -> tuple[torch.Tensor | None, ...]:
    # the backward operator has no gradient of its own: a second derivative raises instead of being 0
    weights = torch.ops.digit_studio.lenet_features_backward(grad, *ctx.saved_tensors, *ctx.size)
    return (None, *weights)


_forward.register_autograd(_gradients, setup_context=_setup_context)
