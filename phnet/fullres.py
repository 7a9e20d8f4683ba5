"""Running the network at its working resolution and applying its result at full resolution.

The network sees a downscaled copy (aspect ratio kept, sides multiples of 8). What comes back is
not upscaled as a picture: we upscale the *change* it made and add that to the full-resolution
composite, inside the mask only, so hair and skin keep their native detail and the background is
untouched. Three ways of carrying the change up are offered; ``benchmarks`` measures them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

METHODS = ("correction", "guided", "resize")


def working_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """About size² pixels with the input's aspect ratio; both sides multiples of 8."""
    scale = size / math.sqrt(height * width)
    return max(8, round(height * scale / 8) * 8), max(8, round(width * scale / 8) * 8)


def resize(x: torch.Tensor, shape: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(shape):
        return x
    if mode in ("nearest", "nearest-exact"):
        return F.interpolate(x, size=shape, mode=mode)
    shrinking = shape[0] < x.shape[-2] or shape[1] < x.shape[-1]
    return F.interpolate(x, size=shape, mode=mode, align_corners=False, antialias=shrinking)


def fill_outside(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Extend ``values`` from where ``weight`` > 0 over the rest (push-pull), keeping them where weight = 1.

    Upscaling a correction that drops to zero at the mask edge would fade the subject's rim; filled
    in from the inside, the correction stays whole up to the edge.
    """
    levels = [(values * weight, weight)]
    while min(levels[-1][1].shape[-2:]) > 1:
        num, den = levels[-1]
        levels.append((F.avg_pool2d(num, 2, ceil_mode=True), F.avg_pool2d(den, 2, ceil_mode=True)))
    num, den = levels[-1]
    filled = num / den.clamp(min=1e-8)
    for num, den in reversed(levels[:-1]):
        coarse = F.interpolate(filled, size=num.shape[-2:], mode="bilinear", align_corners=False)
        cover = den.clamp(0, 1)
        filled = cover * (num / den.clamp(min=1e-8)) + (1 - cover) * coarse
    return filled


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    k = 2 * radius + 1
    return F.avg_pool2d(F.pad(x, (radius,) * 4, mode="replicate"), k, stride=1)


def local_affine(
    source: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, radius: int, eps: float = 1e-4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel a, b with target ≈ a·source + b in each (2r+1)² window, weighted (guided-filter fit)."""
    w = box_mean(weight, radius).clamp(min=1e-6)
    mean_s = box_mean(source * weight, radius) / w
    mean_t = box_mean(target * weight, radius) / w
    cov = box_mean(source * target * weight, radius) / w - mean_s * mean_t
    var = box_mean(source * source * weight, radius) / w - mean_s * mean_s
    a = cov / (var + eps)
    b = mean_t - a * mean_s
    return box_mean(a, radius), box_mean(b, radius)


def apply_full_resolution(
    composite: torch.Tensor,
    mask: torch.Tensor,
    composite_low: torch.Tensor,
    prediction_low: torch.Tensor,
    mask_low: torch.Tensor,
    method: str = "correction",
) -> torch.Tensor:
    """The full-resolution harmonized foreground (to be blended with ``mask`` by the caller)."""
    shape = composite.shape[-2:]
    if method == "resize":  # the prediction itself, upscaled: loses the subject's fine detail
        return resize(prediction_low, shape, "bicubic")
    if method == "correction":
        delta = fill_outside(prediction_low - composite_low, mask_low)
        return composite + resize(delta, shape, "bilinear")
    if method == "guided":
        radius = max(1, round(min(composite_low.shape[-2:]) / 64))
        a, b = local_affine(composite_low, prediction_low, mask_low, radius)
        a, b = fill_outside(a, mask_low), fill_outside(b, mask_low)
        return resize(a, shape, "bilinear") * composite + resize(b, shape, "bilinear")
    raise ValueError(f"unknown full-resolution method {method!r}; choose one of {METHODS}")
