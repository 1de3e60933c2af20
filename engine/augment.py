"""Data augmentation on whole batches of tensors, on the training device.

People draw digits larger, smaller, slanted, off-centre and with pens thinner or thicker than MNIST's.
One random affine warp plus a smooth elastic field per sample (a single ``grid_sample`` call for the
batch) and a random stroke-width change (a 3x3 dilation or erosion blended in) cover those variations
without any per-sample Python.

Randomness comes from an explicit ``torch.Generator`` on the CPU so a run is reproducible from its
seed, on any device, and a resumed run draws exactly what an uninterrupted one would have. Only the few
random numbers per sample are drawn there (:func:`draw_augmentation`); the sampling grid and the warp
are computed on the images' device (:func:`apply_augmentation`), so a GPU run copies a few hundred bytes
per batch instead of building the grid on the CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from engine.devices import copy_to


@dataclass(frozen=True)
class AugmentSettings:
    max_rotation_deg: float = 12.0
    scale_range: tuple[float, float] = (0.85, 1.12)
    max_shift_px: float = 2.5
    max_shear: float = 0.15
    elastic_strength_px: float = 1.0
    stroke_range: tuple[float, float] = (-0.5, 0.6)


DEFAULT_AUGMENT = AugmentSettings()


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) * (high - low) + low


# the random numbers of one sample, in the order they are drawn and laid out: rotation, scale, shear,
# shift (x, y), the elastic field's coarse 2x4x4 grid, stroke-width change
_PARTS = (1, 1, 1, 2, 2 * 4 * 4, 1)
NUMBERS_PER_SAMPLE = sum(_PARTS)


def draw_augmentation(
    n: int, width: int, generator: torch.Generator, settings: AugmentSettings = DEFAULT_AUGMENT
) -> torch.Tensor:
    """The random numbers that augment ``n`` images ``width`` pixels wide: one flat float CPU tensor.

    Drawing is apart from :func:`apply_augmentation` so that a GPU run can send them in one copy and
    replay the whole warp from a CUDA graph, whose inputs must be tensors at fixed addresses.
    """
    # Every draw in one fixed order from the CPU generator (the order is part of reproducibility).
    angle = _uniform(n, -1, 1, generator) * math.radians(settings.max_rotation_deg)
    scale = _uniform(n, *settings.scale_range, generator)
    shear = _uniform(n, -settings.max_shear, settings.max_shear, generator)
    shift = _uniform(2 * n, -1, 1, generator) * (2 * settings.max_shift_px / width)
    coarse = torch.randn(2 * 4 * 4 * n, generator=generator) * (2 * settings.elastic_strength_px / width)
    stroke = _uniform(n, *settings.stroke_range, generator)
    return torch.cat([angle, scale, shear, shift, coarse, stroke])


def take_samples(numbers: torch.Tensor, n: int, start: int, stop: int) -> torch.Tensor:
    """The numbers of samples ``start:stop`` of the ``n`` that :func:`draw_augmentation` drew for: one
    process's share of a global batch draws exactly what a single process would for those images."""
    parts = numbers.split([part * n for part in _PARTS])
    return torch.cat([values.view(n, part)[start:stop].reshape(-1) for values, part in zip(parts, _PARTS, strict=True)])


def apply_augmentation(
    images: torch.Tensor, numbers: torch.Tensor, settings: AugmentSettings = DEFAULT_AUGMENT
) -> torch.Tensor:
    """Warp float images in [0, 1] of shape (N, 1, H, W) by numbers from :func:`draw_augmentation`.

    Returns a new tensor on the images' device, computed there with a fixed sequence of tensor
    operations and no read-back, so it can be captured in a CUDA graph. ``numbers`` may be on the CPU
    (pinned, for an asynchronous copy) or already on the device.
    """
    n, _, h, w = images.shape
    numbers = copy_to(numbers, images.device)
    angle, scale, shear, shift, coarse, stroke = numbers.split([part * n for part in _PARTS])
    shift, coarse, stroke = shift.view(n, 2), coarse.view(n, 2, 4, 4), stroke.view(n, 1, 1, 1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # affine_grid maps output to input coordinates, so the inverse scale makes digits grow when scale > 1.
    theta = torch.stack(
        [
            torch.stack([cos / scale, (-sin + shear) / scale, shift[:, 0]], dim=1),
            torch.stack([sin / scale, cos / scale, shift[:, 1]], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    if settings.elastic_strength_px > 0:
        field = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
        grid = grid + field.permute(0, 2, 3, 1)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    target = torch.where(stroke > 0, _morph3(warped, torch.maximum), _morph3(warped, torch.minimum))
    return torch.lerp(warped, target, stroke.abs())


def augment_batch(
    images: torch.Tensor,
    generator: torch.Generator,
    settings: AugmentSettings = DEFAULT_AUGMENT,
) -> torch.Tensor:
    """Augment float images in [0, 1] of shape (N, 1, H, W); returns a new tensor on the same device.

    Draws and applies in one call. The Trainer calls the two apart, to pin the numbers for the copy
    into its CUDA graph's input buffer."""
    numbers = draw_augmentation(images.shape[0], images.shape[-1], generator, settings)
    return apply_augmentation(images, numbers, settings)


def _morph3(x: torch.Tensor, op) -> torch.Tensor:
    """3x3 dilation (``torch.maximum``) or erosion (``torch.minimum``) as two separable passes.

    Four elementwise ops on shifted views: several times faster on a CPU than a stride-1 max_pool2d.
    """
    p = F.pad(x, (1, 1, 1, 1))
    rows = op(op(p[:, :, :, :-2], p[:, :, :, 1:-1]), p[:, :, :, 2:])
    return op(op(rows[:, :, :-2], rows[:, :, 1:-1]), rows[:, :, 2:])
