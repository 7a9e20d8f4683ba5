"""Mask morphology: grow or shrink, feather, bounding box, and the shape of an inverted mask. Any mask source,
not only SAM's.

Masks come in through :func:`phnet.imageio.mask_to_array` (PIL, numpy or torch, one H x W mask, read
by the input rules) and go out as float32 H x W arrays in [0, 1].
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from .imageio import mask_to_array

__all__ = ["gaussian_blur", "refine_mask", "mask_bbox", "looks_inverted", "inverted_masks"]


def finite_real(value: Any) -> bool:
    """A number, not a bool, that is finite as a float (an integer past any float is not)."""
    try:
        return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    except OverflowError:
        return False


def checked_number(value: Any, what: str, low: float | None = None, high: float | None = None) -> float:
    """``value`` as a float, or one ValueError saying what it must be."""
    ok = finite_real(value)
    if not ok and isinstance(value, Integral) and not isinstance(value, bool):  # past any float: thousands of digits
        raise ValueError(f"{what}, got an integer too large for a float")
    if not ok or (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{what}, got {value!r}")
    return float(value)


def _gaussian_kernel1d(sigma: float) -> torch.Tensor:
    radius = max(1, int(np.ceil(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)  # not x² / 2σ²: a tiny sigma's 2σ² is 0, its centre tap 0/0
    return (k / k.sum()).float()


def _check_width(sigma: float, shape: tuple[int, ...], name: str, what: str = "mask") -> None:
    """A blur wider than the mask's longest side would mark nothing, and its kernel grows with it (1e7 asked for
    11 GB): one ValueError naming ``name`` (the caller's word for the sigma), the H x W ``shape`` as ``what`` (the
    mask, or the picture it is made for) and the widest allowed."""
    if sigma > max(shape):
        raise ValueError(f"{name} {sigma:g} is wider than the {shape[1]}x{shape[0]} {what}, so it would spread "
                         f"the mask too thin to mark anything: give a {name} of at most {max(shape)} pixels")


def gaussian_blur(mask_hw: Any, sigma: float) -> np.ndarray:
    """Separable gaussian blur of a H x W mask (edge pixels replicated), float32 out; ``sigma`` at most the mask's
    longest side."""
    sigma = checked_number(sigma, "sigma must be a number >= 0 (a blur sigma in pixels)", 0)
    m = mask_to_array(mask_hw)
    _check_width(sigma, m.shape, "sigma")
    k = _gaussian_kernel1d(sigma) if sigma > 0 else None
    if k is None or k.count_nonzero() == 1:  # too narrow to reach the next pixel: no blur
        return m
    t = torch.from_numpy(m)[None, None]
    t = _blur_along(_blur_along(t, k, -1), k, -2)[0, 0]
    # the FFT leaves ~1e-8 where the sum is 0 or 1: a mask's "no trace here" and "wholly subject" are exact
    t = torch.where(t < _ROUNDING, 0.0, torch.where(t > 1.0 - _ROUNDING, 1.0, t))
    return np.ascontiguousarray(t.numpy())


_ROUNDING = 1e-6  # far below a 16-bit mask's step


def _smooth_size(n: int) -> int:
    """The smallest length >= n whose only prime factors are 2, 3 and 5 (fast FFT sizes)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _blur_along(t: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    # The same sum as a replicate-padded convolution, computed through the FFT so that its cost
    # does not grow with sigma (a direct 385-tap pass over a 24 MP mask took over a minute).
    r = (kernel.numel() - 1) // 2
    n = t.shape[dim]
    t = F.pad(t, (r, r, 0, 0) if dim == -1 else (0, 0, r, r), mode="replicate")
    size = _smooth_size(n + 4 * r)
    spectrum = torch.fft.rfft(kernel, n=size)
    if dim == -2:
        spectrum = spectrum[:, None]
    out = torch.fft.irfft(torch.fft.rfft(t, n=size, dim=dim) * spectrum, n=size, dim=dim)
    return out.narrow(dim, 2 * r, n)


def _shifted(t: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``t`` read at (y + dy, x + dx); 0 where that falls outside."""
    h, w = t.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        return torch.zeros_like(t)
    inside = t[..., max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)]
    return F.pad(inside, (max(0, -dx), max(0, dx), max(0, -dy), max(0, dy)))


def _max_along(t: torch.Tensor, k: int, dy: int, dx: int) -> torch.Tensor:
    """Max over the 2k + 1 pixels t(y + j dy, x + j dx), |j| <= k, in O(log k) passes."""
    if k <= 0:
        return t
    length, span, m = 2 * k + 1, 1, t
    while 2 * span <= length:
        m = torch.maximum(m, _shifted(m, span * dy, span * dx))
        span *= 2
    # m now holds the max over `span` pixels starting at each one; two reads cover all 2k + 1.
    first, last = -k, length - span - k
    return torch.maximum(_shifted(m, first * dy, first * dx), _shifted(m, last * dy, last * dx))


def _dilate(t: torch.Tensor, radius: int) -> torch.Tensor:
    """Grey dilation by an octagon of that radius: a square of radius ceil(r/2) grown by a
    diamond of radius floor(r/2), a cheap stand-in for a disc that keeps corners from turning
    into squares. Pixels outside the picture do not count."""
    square, diamond = (radius + 1) // 2, radius // 2
    # Room for the intermediate sums, so that splitting the shape into steps loses nothing at the edges.
    t = F.pad(t, (radius, radius, radius, radius))
    t = _max_along(_max_along(t, square, 0, 1), square, 1, 0)
    if diamond:
        # A diamond of radius 2k + 1 is a cross grown by two diagonal segments of radius k.
        crosses = 2 - diamond % 2
        for _ in range(crosses):
            grown = t
            for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                grown = torch.maximum(grown, _shifted(t, dy, dx))
            t = grown
        k = (diamond - crosses + 1) // 2
        t = _max_along(_max_along(t, k, 1, 1), k, 1, -1)
    return t[..., radius:-radius, radius:-radius]


def refine_numbers(grow: Any, feather: Any) -> tuple[int, float]:
    """``grow`` and ``feather`` as :func:`refine_mask` uses them, or its ValueError: for a caller that checks them
    before the work that makes the mask."""
    feather = checked_number(feather, "feather must be a number >= 0 (a blur sigma in pixels)", 0)
    if not checked_number(grow, "grow must be a whole number of pixels").is_integer():  # 2.5 was rounded to 2
        raise ValueError(f"grow must be a whole number of pixels, got {grow!r}")
    return int(grow), feather


def refine_mask(mask_hw: Any, grow: int = 0, feather: float = 0.0) -> np.ndarray:
    """Grow (``grow`` > 0, dilate) or shrink (< 0, erode) by that many pixels, then feather.

    ``feather`` is the gaussian sigma in pixels, at most the mask's longest side. Returns float32 H x W in [0, 1].
    """
    grow, feather = refine_numbers(grow, feather)
    m = mask_to_array(mask_hw)
    _check_width(feather, m.shape, "feather")  # before the grow, and named as the caller's option
    if abs(grow) >= 2 * max(m.shape):  # its square part reaches every pixel from every pixel: no need to pad by it
        m = np.full_like(m, m.max() if grow > 0 else m.min())
    elif grow != 0:
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
    threshold = checked_number(threshold, "threshold must be a number in 0..1", 0, 1)
    on = mask_to_array(mask_hw) > threshold
    if not on.any():
        return None
    ys = np.flatnonzero(on.any(axis=1))
    xs = np.flatnonzero(on.any(axis=0))
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


# "Covers most of the picture and its border": the shape of a cut-out's transparent area.
INVERTED_AREA = 0.5
INVERTED_BORDER = 0.75


def looks_inverted(mask_hw: Any) -> tuple[float, float] | None:
    """(area, border) shares of an H×W mask on the 0..1 scale (a numpy array or a tensor) shaped like a cut-out's
    transparent part (an inverted mask): most of the picture and of its border, with its hole, where the subject
    is, around the middle; else None. A subject that fills its picture but for its corners (rounded, a face filling
    the frame) covers the middle."""
    on = torch.as_tensor(mask_hw >= 0.5)
    border = torch.cat([on[0], on[-1], on[:, 0], on[:, -1]]).float().mean().item()
    area = on.count_nonzero().item() / on.numel()  # counted: a float copy of a 4K mask cost most of the time
    h, w = on.shape[-2:]
    centre = on[h // 3 : max(h // 3 + 1, 2 * h // 3), w // 3 : max(w // 3 + 1, 2 * w // 3)]
    middle = centre.count_nonzero().item() / centre.numel()
    if INVERTED_AREA <= area < 1.0 and border >= INVERTED_BORDER and middle < 0.5:
        return area, border
    return None


def inverted_masks(masks: Iterable[Any], clip: bool = False, total: int | None = None
                   ) -> list[tuple[int, float, float]]:
    """The masks of a batch that look inverted (:func:`looks_inverted`), as (index, area, border), when they are
    reason to refuse the batch; else []. A batch is refused for one such mask; a clip's frames, judged as a whole,
    when most of its masks that mark a subject look inverted (a subject may rightly fill much of a frame, walking
    into the camera). ``masks`` are H×W on the 0..1 scale, and may be read one at a time (a generator); ``total``,
    how many it holds: a clip's are read no further once the rest, all inverted, could not make it refused."""
    inverted, subjects = [], 0
    for i, m in enumerate(masks):
        subjects += bool((m > 0).any())
        shares = looks_inverted(m)
        if shares is not None:
            inverted.append((i, *shares))
        if clip and total is not None and 2 * len(inverted) + total - (i + 1) <= subjects:
            return []
    return inverted if inverted and (not clip or 2 * len(inverted) > subjects) else []
