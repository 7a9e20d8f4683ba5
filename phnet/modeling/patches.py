"""The G×G patch partition shared by the PN blocks and the feature extractor.

Rows are cut into bands of ``size // G`` pixels; the last band runs to the edge and takes the
remainder (the official partition). Sums over every patch are two small matrix products with
one-hot band matrices, and patch values go back to pixels the same way, so no Python loop over
patches is needed.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Callable

import torch
from torch import nn

from ..compat import autocast_available, autocast_enabled


def band_index(size: int, grid: int, device: torch.device) -> torch.Tensor:
    """The band each of ``size`` pixels falls in."""
    step = size // grid
    if step == 0:  # fewer pixels than bands: every pixel lies in the last band, the others are empty
        return torch.full((size,), grid - 1, device=device, dtype=torch.long)
    return (torch.arange(size, device=device) // step).clamp_(max=grid - 1)


def one_hot(index: torch.Tensor, classes: int, dtype: torch.dtype) -> torch.Tensor:
    """``F.one_hot(index, classes).to(dtype)`` without its range check, which reads the index back to the
    host on the CPU (a forward pass stays free of host reads on every device, as CUDA graphs need)."""
    return (index[:, None] == torch.arange(classes, device=index.device)).to(dtype)


class Partition:
    """The G×G patches of an H×W picture as one-hot band matrices, for sums over patches and back to pixels."""

    def __init__(self, height: int, width: int, grid: int, device: torch.device, dtype: torch.dtype) -> None:
        self.grid = grid
        self.row_index = band_index(height, grid, device)
        self.col_index = band_index(width, grid, device)
        self.rows_t = one_hot(self.row_index, grid, dtype).t().contiguous()  # G×H
        self.cols = one_hot(self.col_index, grid, dtype)  # W×G

    def sums(self, x: torch.Tensor) -> torch.Tensor:
        """B×C×H×W → B×C×G×G sums over each patch."""
        return self.rows_t @ (x @ self.cols)

    def expand(self, stat: torch.Tensor) -> torch.Tensor:
        """B×C×G×G → B×C×H×W, every pixel taking its patch's value."""
        return self.rows_t.t() @ stat @ self.cols.t()  # one-hot products copy values exactly


def partition(x: torch.Tensor, grid: int) -> Partition:
    """The ``grid``×``grid`` partition of ``x``'s last two dimensions, in its device and precision."""
    return Partition(x.shape[-2], x.shape[-1], grid, x.device, x.dtype)


def full_precision(forward: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Run a module's statistics in fp32 at least, even under autocast: sums over many pixels need the mantissa.
    Without autocast the result comes back in the input's precision (a model cast with .half() or .double()
    runs as a whole); under it, in fp32, as autocast's own fp32 operations return."""

    @functools.wraps(forward)
    def wrapper(self: nn.Module, first: torch.Tensor, *others: torch.Tensor | None) -> torch.Tensor:
        tensors = (first, *others)
        device, given = first.device.type, first.dtype
        work = torch.promote_types(given, torch.float32)
        autocasting = autocast_enabled(device)
        with contextlib.ExitStack() as stack:  # (its parameters meet the tensors in elementwise steps)
            if autocast_available(device):  # a device without autocast (MPS before torch 2.5) refuses to turn it off
                stack.enter_context(torch.autocast(device, enabled=False))
            out = forward(self, *(None if t is None else t.to(work) for t in tensors))
        return out if autocasting else out.to(given)

    return wrapper
