"""Mask morphology: grow or shrink, feather, bounding box. Any mask source, not only SAM's.

Masks come in through :func:`phnet.imageio.mask_to_array` (PIL, numpy or torch, one H x W mask, read
by the input rules) and go out as float32 H x W arrays in [0, 1].
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .imageio import mask_to_array

__all__ = ["gaussian_blur", "refine_mask", "mask_bbox"]


def _gaussian_kernel1d(sigma: float) -> torch.Tensor:
    radius = max(1, int(np.ceil(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2.0 * sigma * sigma))
    return k / k.sum()


def gaussian_blur(mask_hw: Any, sigma: float) -> np.ndarray:
    """Separable gaussian blur of a H x W mask (edge pixels replicated), float32 out."""
    m = mask_to_array(mask_hw)
    if sigma <= 0:
        return m
    k = _gaussian_kernel1d(float(sigma))
    r = (k.numel() - 1) // 2
    t = torch.from_numpy(m)[None, None]
    t = F.conv2d(F.pad(t, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    t = F.conv2d(F.pad(t, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return t[0, 0].clamp_(0.0, 1.0).numpy()


def _dilate(t: torch.Tensor, radius: int) -> torch.Tensor:
    # Alternating 3x3 square and 3x3 cross steps grow an octagon, a cheap stand-in for a
    # disc that keeps corners from turning into squares. Works on soft masks too (grey dilation).
    for i in range(radius):
        if i % 2 == 0:
            t = F.max_pool2d(t, 3, stride=1, padding=1)
        else:
            p = F.pad(t, (1, 1, 1, 1), mode="replicate")
            t = torch.stack(
                [t, p[..., :-2, 1:-1], p[..., 2:, 1:-1], p[..., 1:-1, :-2], p[..., 1:-1, 2:]]
            ).amax(0)
    return t


def refine_mask(mask_hw: Any, grow: int = 0, feather: float = 0.0) -> np.ndarray:
    """Grow (``grow`` > 0, dilate) or shrink (< 0, erode) by that many pixels, then feather.

    ``feather`` is the gaussian sigma in pixels. Returns float32 H x W in [0, 1].
    """
    if not (math.isfinite(feather) and feather >= 0):
        raise ValueError(f"feather must be a number >= 0 (a blur sigma in pixels), got {feather}.")
    if not math.isfinite(grow):
        raise ValueError(f"grow must be a whole number of pixels, got {grow}.")
    m = mask_to_array(mask_hw)
    grow = int(round(grow))
    if grow != 0:
        t = torch.from_numpy(np.ascontiguousarray(m))[None, None]
        if grow > 0:
            t = _dilate(t, grow)
        else:
            # Erosion is dilation of the background; the image border counts as inside
            # (replicate padding) so a subject touching the edge is not eaten from there.
            t = 1.0 - _dilate(1.0 - t, -grow)
        m = t[0, 0].numpy()
    if feather > 0:
        m = gaussian_blur(m, feather)
    return np.ascontiguousarray(m, dtype=np.float32)


def mask_bbox(mask_hw: Any, threshold: float = 0.5) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1) of pixels above ``threshold``; x1/y1 are exclusive.

    None when no pixel is above the threshold.
    """
    on = mask_to_array(mask_hw) > threshold
    if not on.any():
        return None
    ys = np.flatnonzero(on.any(axis=1))
    xs = np.flatnonzero(on.any(axis=0))
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1
