"""The G×G patch partition shared by the PN blocks and the feature extractor.

Rows are cut into bands of ``size // G`` pixels; the last band runs to the edge and takes the
remainder (the official partition). Sums over every patch are two small matrix products with
one-hot band matrices, so no Python loop over patches is needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def band_matrix(size: int, grid: int, *, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """size×grid one-hot matrix: entry (p, g) is 1 when pixel p falls in band g."""
    step = size // grid
    if step == 0:  # fewer pixels than bands: every pixel lies in the last band, the others are empty
        index = torch.full((size,), grid - 1, device=device, dtype=torch.long)
    else:
        index = (torch.arange(size, device=device) // step).clamp_(max=grid - 1)
    return F.one_hot(index, grid).to(dtype)


def patch_sums(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """B×C×H×W → B×C×G×G sums over each patch."""
    return torch.einsum("bchw,hi,wj->bcij", x, rows, cols)


def expand_patches(stat: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """B×C×G×G → B×C×H×W, every pixel taking its patch's value."""
    return torch.einsum("bcij,hi,wj->bchw", stat, rows, cols)


def partition(x: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = x.shape[-2:]
    return (
        band_matrix(h, grid, device=x.device, dtype=x.dtype),
        band_matrix(w, grid, device=x.device, dtype=x.dtype),
    )
