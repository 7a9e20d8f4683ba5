"""Patch-based Normalization (PN): re-styles foreground features with background statistics."""

from __future__ import annotations

import torch
from torch import nn

from .patches import partition, patch_sums


def masked_mean_std(x: torch.Tensor, region: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (biased) std of ``x`` over the pixels weighted by ``region`` (B×1×H×W), per channel."""
    count = region.sum(dim=(2, 3), keepdim=True)
    mean = (x * region).sum(dim=(2, 3), keepdim=True) / (count + eps)
    var = (((x - mean) * region) ** 2).sum(dim=(2, 3), keepdim=True) / (count + eps)
    return mean, torch.sqrt(var + eps)


class PatchNormalization(nn.Module):
    """Foreground = mix of a global and a patch-aware re-styling with background statistics.

    With X̂ = (X − μF)/σF:  global = (X̂σB + μB)·γF + βF,  patch = (X̂σB + Σ W_ij μB_ij)·γP + βP,
    foreground = λ0·global + λ1·patch; background = (X − μB)/σB·γB + βB. Parameter names follow the
    official state_dict.
    """

    def __init__(
        self,
        channels: int,
        grid: int,
        init_weights: tuple[float, float] = (0.5, 0.5),
        init_value: float = 0.8,
        eps: float = 1e-7,
    ) -> None:
        super().__init__()
        self.channels, self.grid, self.eps = channels, grid, eps
        shape = (1, channels, 1, 1)
        self.weights = nn.Parameter(torch.tensor(init_weights, dtype=torch.float32))
        self.fg_var = nn.Parameter(torch.full(shape, init_value))
        self.fg_bias = nn.Parameter(torch.zeros(shape))
        self.patched_fg_var = nn.Parameter(torch.full(shape, init_value))
        self.patched_fg_bias = nn.Parameter(torch.zeros(shape))
        self.bg_var = nn.Parameter(torch.full(shape, init_value))
        self.bg_bias = nn.Parameter(torch.zeros(shape))
        self.grid_weights = nn.Parameter(torch.full((1, channels, grid, grid), 1.0 / (grid * grid * channels)))

    def patch_background_means(self, x: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
        rows, cols = partition(x, self.grid)
        sums = patch_sums(x * background, rows, cols)
        counts = patch_sums(background, rows, cols)
        return sums / (counts + self.eps)  # a patch with no background gets mean 0

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        background = 1 - mask
        mu_b, sd_b = masked_mean_std(x, background, self.eps)
        mu_f, sd_f = masked_mean_std(x, mask, self.eps)
        mu_patch = (self.patch_background_means(x, background) * self.grid_weights).sum(dim=(2, 3), keepdim=True)

        restyled = (x - mu_f) / sd_f * sd_b
        fg_global = (restyled + mu_b) * self.fg_var + self.fg_bias
        fg_patch = (restyled + mu_patch) * self.patched_fg_var + self.patched_fg_bias
        foreground = self.weights[0] * fg_global + self.weights[1] * fg_patch
        bg = (x - mu_b) / sd_b * self.bg_var + self.bg_bias
        return foreground * mask + bg * (1 - mask)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, grid={self.grid}"
