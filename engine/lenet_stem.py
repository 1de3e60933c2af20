"""LeNet's first layers -- conv1, 2x2 max-pool, ReLU, conv2 -- with a fused CPU kernel for the first three.

Why: on a CPU, conv1's block is most of a LeNet training step, and oneDNN computes conv2's input gradient
(6 channels wide) at a fraction of its forward speed; neither is arithmetic-bound (README, Performance).
``engine/native/conv_pool.c`` does conv1+pool+ReLU in one pass that never writes the 24x24 convolution
output, and in backward goes straight from conv2's output gradient to conv1's weight gradient. conv2's
forward and its weight gradient stay with oneDNN, which does those well.

The function is the same as the plain operators' up to float rounding (tests/test_lenet_stem.py compares
values and gradients, ties and NaNs included). The plain path runs wherever the kernel does not apply:
GPUs, other dtypes, autocast, an input that needs its own gradient, tracing and export, or no kernel
library on this machine (engine.native_library says why).
"""
from __future__ import annotations

import ctypes
import platform
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

from engine import native_library

KERNEL = 5
CHANNELS = 6  # conv1's output channels, a compile-time constant of the kernel (its CHANNELS)
# Below this batch size the fused path's fixed costs (a Python autograd function, workspaces, ctypes
# calls, a 16-image chunk a few images fill) outweigh what it saves, and PyTorch's own small-batch
# convolutions are as fast or faster: LeNet in the Trainer at batch 4 trained 0.8x as fast with it, at 8
# 0.92-1.01x, at 12 1.12x, at 16 1.2x, at 128 1.6-1.9x (README, Performance).
MIN_BATCH = 9
# Where the kernel was measured faster than the plain operators: on x86-64, built for AVX-512 (16 lanes),
# AVX2 (8) and SSE (4) alike (the stem's forward and backward at batch 128, all three built on this
# project's AVX-512 machine: 0.85, 1.07 and 1.66 ms against 2.2 ms). Elsewhere (ARM's NEON) no one has
# measured it yet, so the plain operators run there.
MEASURED_MACHINES = ("x86_64", "amd64")
MACHINE = platform.machine()

_i64, _ptr = ctypes.c_int64, ctypes.c_void_p


def kernel_status(build: bool = True) -> native_library.NativeLibrary | None:
    """Whether the fused kernel is in use on this machine, and if not, why. With ``build`` False, None
    where this process has not built or loaded it yet (instead of compiling it now)."""
    if MACHINE.lower() not in MEASURED_MACHINES:
        return native_library.NativeLibrary(
            "conv_pool", None, reason=f"not yet measured against PyTorch's own operators on {MACHINE}")
    loaded = native_library.load("conv_pool") if build else native_library.loaded("conv_pool")
    if loaded is None:
        return None
    lib = loaded.library
    if lib is None:
        return loaded
    if not hasattr(lib, "lanes"):
        lib.conv_pool_relu_forward.argtypes = [_ptr, _i64, _i64, _i64, _ptr, _ptr, _i64, _ptr, _ptr, _ptr]
        lib.conv_pool_relu_forward.restype = ctypes.c_int
        lib.conv_pool_relu_backward.argtypes = [_ptr, _ptr, _i64, _ptr, _ptr, _i64, _i64, _i64, _i64,
                                                _ptr, _ptr, _ptr, _ptr, _ptr]
        lib.conv_pool_relu_backward.restype = ctypes.c_int
        lib.lanes = lib.conv_pool_lanes()
    return loaded


def _library() -> ctypes.CDLL | None:
    status = kernel_status()
    return status.library if status is not None else None


def plain_stem(x: torch.Tensor, conv1: nn.Conv2d, conv2: nn.Conv2d) -> torch.Tensor:
    # max-pooling before the ReLU: the same values (both are monotone) for a quarter of the ReLU work
    return conv2(F.relu(F.max_pool2d(conv1(x), 2)))


def _applies(x: torch.Tensor, conv1: nn.Conv2d, conv2: nn.Conv2d) -> bool:
    params = (conv1.weight, conv1.bias, conv2.weight, conv2.bias)
    return (
        not torch.jit.is_tracing()  # first: a traced or exported model records plain operators
        and not torch.jit.is_scripting()
        and not torch.compiler.is_compiling()
        and not torch.compiler.is_exporting()
        and not torch.onnx.is_in_onnx_export()
        and type(x) is torch.Tensor  # not a fake, functional or other tensor subclass of a tracer
        and not is_in_torch_dispatch_mode()  # FLOP counters, fake-tensor and other modes see every operator
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.dim() == 4
        and x.shape[1] == 1
        and x.shape[0] >= MIN_BATCH
        and min(x.shape[2], x.shape[3]) >= 2 * KERNEL + KERNEL - 1  # conv2 still has an output
        and not x.requires_grad
        and all(p is not None and p.device.type == "cpu" and p.dtype == torch.float32 for p in params)
        and conv1.weight.shape == (CHANNELS, 1, KERNEL, KERNEL)
        and conv2.weight.shape[1:] == (CHANNELS, KERNEL, KERNEL)
        and all(c.stride == (1, 1) and c.padding == (0, 0) and c.dilation == (1, 1) and c.groups == 1
                for c in (conv1, conv2))
        and not torch.is_autocast_enabled("cpu")
    )


def stem(x: torch.Tensor, conv1: nn.Conv2d, conv2: nn.Conv2d) -> torch.Tensor:
    """conv2(relu(max_pool2d(conv1(x), 2))), fused on the CPU where the kernel applies."""
    if _applies(x, conv1, conv2) and _library() is not None:
        return _FusedStem.apply(x, conv1.weight, conv1.bias, conv2.weight, conv2.bias)
    return plain_stem(x, conv1, conv2)


def _check(status: int) -> None:
    if status != 0:  # _applies checked the shapes; this is a kernel built with another CHANNELS
        raise RuntimeError(f"the conv_pool kernel was not built for {CHANNELS} channels (status {status})")


def _pooled_size(x: torch.Tensor) -> tuple[int, int]:
    return (x.shape[2] - KERNEL + 1) // 2, (x.shape[3] - KERNEL + 1) // 2


class _FusedStem(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight1: torch.Tensor, bias1: torch.Tensor, weight2: torch.Tensor,
                bias2: torch.Tensor) -> torch.Tensor:
        lib = _library()
        batch, _, height, width = x.shape
        ph, pw = _pooled_size(x)
        lanes_per_chunk = lib.lanes
        chunks = -(-batch // lanes_per_chunk)
        x = x.contiguous()
        w1 = weight1.detach().reshape(CHANNELS, KERNEL * KERNEL).contiguous()
        b1 = bias1.detach().contiguous()
        pooled = torch.empty(batch, ph, pw, CHANNELS)  # NHWC: the channels-last layout conv2 reads fastest
        lanes = torch.empty(chunks, height * width, lanes_per_chunk)
        index = torch.empty(chunks, CHANNELS, ph * pw, lanes_per_chunk, dtype=torch.uint8)
        _check(lib.conv_pool_relu_forward(x.data_ptr(), batch, height, width, w1.data_ptr(), b1.data_ptr(),
                                          CHANNELS, pooled.data_ptr(), lanes.data_ptr(), index.data_ptr()))
        hidden = pooled.permute(0, 3, 1, 2)
        ctx.save_for_backward(lanes, index, hidden, weight2)
        ctx.input_shape = (batch, height, width)
        ctx.library = lib  # the same build in backward, whatever happens to the switch meanwhile
        return F.conv2d(hidden, weight2, bias2)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        lanes, index, hidden, weight2 = ctx.saved_tensors
        batch, height, width = ctx.input_shape
        need_w1, need_b1, need_w2, need_b2 = ctx.needs_input_grad[1:]
        grad = grad.contiguous(memory_format=torch.channels_last)
        grad_w2 = grad_b2 = grad_w1 = grad_b1 = None
        if need_w2 or need_b2:
            _, grad_w2, grad_b2 = torch.ops.aten.convolution_backward(
                grad, hidden, weight2, [weight2.shape[0]], (1, 1), (0, 0), (1, 1), False, (0, 0), 1,
                (False, need_w2, need_b2))
        if need_w1 or need_b1:
            channels2 = weight2.shape[0]
            ph, pw = hidden.shape[2:]
            chunks, _, lanes_per_chunk = lanes.shape
            w2 = weight2.detach().permute(0, 2, 3, 1).contiguous()  # (C2, 5, 5, C): see the kernel
            grad_w1 = torch.empty(CHANNELS, 1, KERNEL, KERNEL)
            grad_b1 = torch.empty(CHANNELS)
            # workspaces, named so that they outlive the call (a temporary's memory would be freed at once)
            # conv2's output gradient, its rows padded with KERNEL - 1 zero columns on each side
            grad_lanes2 = torch.empty(chunks, channels2, ph - KERNEL + 1, pw + KERNEL - 1, lanes_per_chunk)
            grad_lanes1 = torch.empty(chunks, CHANNELS, ph * pw, lanes_per_chunk)
            partial_sums = torch.empty(chunks, CHANNELS, KERNEL * KERNEL + 1, lanes_per_chunk)
            _check(ctx.library.conv_pool_relu_backward(
                grad.data_ptr(), w2.data_ptr(), channels2, lanes.data_ptr(), index.data_ptr(), batch, height,
                width, CHANNELS, grad_lanes2.data_ptr(), grad_lanes1.data_ptr(), partial_sums.data_ptr(),
                grad_w1.data_ptr(), grad_b1.data_ptr()))
        return None, grad_w1, grad_b1, grad_w2, grad_b2
