"""PN and PFE computed patch by patch, in the order the official code computes them.

Slow on purpose: this is the plain reading of the formulas, used as the oracle in the tests and as
the network of the official pipeline in ``phnet.bench``. ``OraclePHNet(model)`` shares the
model's parameters, so both forms run the same weights.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from .features import PatchColorTransfer, PatchFeatureExtractor
from .normalization import PatchNormalization
from .phnet import PHNet


def bands(size: int, grid: int) -> list[tuple[int, int]]:
    """The official partition: bands of size // grid pixels, the last one running to the edge."""
    step = size // grid
    edges = [i * step for i in range(grid)] + [size]
    return [(edges[i], edges[i + 1]) for i in range(grid)]


def masked_stats(x: torch.Tensor, region: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) per channel of ``x`` over ``region``'s pixels, as the official block computes them."""
    n = region.sum(dim=(2, 3), keepdim=True)
    mean = (x * region).sum(dim=(2, 3), keepdim=True) / (n + eps)
    var = (((x - mean) * region) ** 2).sum(dim=(2, 3), keepdim=True) / (n + eps)
    return mean, torch.sqrt(var + eps)


def pn_forward(block: PatchNormalization, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``block``'s output (a PN block) computed patch by patch with the official loops."""
    eps, background = block.eps, 1 - mask
    mu_f, sd_f = masked_stats(x, mask, eps)
    mu_b, sd_b = masked_stats(x, background, eps)
    mix = torch.zeros_like(mu_b)
    for i, (r0, r1) in enumerate(bands(x.shape[2], block.grid)):
        for j, (c0, c1) in enumerate(bands(x.shape[3], block.grid)):
            patch_mean, _ = masked_stats(x[:, :, r0:r1, c0:c1], background[:, :, r0:r1, c0:c1], eps)
            mix = mix + block.grid_weights[:, :, i : i + 1, j : j + 1] * patch_mean
    x_hat = (x - mu_f) / sd_f
    fg_global = (x_hat * sd_b + mu_b) * block.fg_var + block.fg_bias
    fg_patch = (x_hat * sd_b + mix) * block.patched_fg_var + block.patched_fg_bias
    foreground = block.weights[0] * fg_global + block.weights[1] * fg_patch
    bg = (x - mu_b) / sd_b * block.bg_var + block.bg_bias
    return foreground * mask + bg * (1 - mask)


def transfer_forward(block: PatchColorTransfer, fg: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
    """``block``'s colour transfer (the PFE's) computed patch by patch with the official loops."""
    eps = block.eps

    def reinhard(f, b, f_stats, b_stats):
        return (f - f_stats[0]) * (b_stats[1] / (f_stats[1] + eps)) + b_stats[0]

    def stats(t):
        return t.mean(dim=(2, 3), keepdim=True), t.std(dim=(2, 3), keepdim=True)

    g_f, g_b = stats(fg), stats(bg)
    out = torch.zeros_like(fg)
    for r0, r1 in bands(fg.shape[2], block.grid):
        for c0, c1 in bands(fg.shape[3], block.grid):
            f, b = fg[:, :, r0:r1, c0:c1], bg[:, :, r0:r1, c0:c1]
            local = reinhard(f, b, stats(f), stats(b))
            out[:, :, r0:r1, c0:c1] = block.grid_weights[0] * local + block.grid_weights[1] * reinhard(f, b, g_f, g_b)
    return out


class _ReferencePN(nn.Module):
    def __init__(self, block: PatchNormalization) -> None:
        super().__init__()
        self.block = block

    def forward(self, x, mask):
        return pn_forward(self.block, x, mask)


class _ReferencePFE(nn.Module):
    def __init__(self, pfe: PatchFeatureExtractor) -> None:
        super().__init__()
        self.pfe = pfe

    def forward(self, image, mask):
        fg, bg = image * mask, image * (1 - mask)
        transferred = transfer_forward(self.pfe.patch_harmonizer, fg, bg) * mask + bg / 255.0 * (1 - mask)
        return self.pfe.head(torch.cat([fg, transferred], dim=1))


class OraclePHNet(PHNet):
    """The model's own weights, with PN and PFE evaluated patch by patch."""

    def __init__(self, model: PHNet) -> None:
        nn.Module.__init__(self)
        self.config = model.config
        # a PHNet's own parts (torch's containers do not carry their items' types)
        self.feature_extractor = _ReferencePFE(cast(PatchFeatureExtractor, model.feature_extractor))
        self.encoder = model.encoder
        self.normalizers = nn.ModuleList(_ReferencePN(cast(PatchNormalization, b)) for b in model.normalizers)
        self.decoder = model.decoder
        self.skip = model.skip
        self.SE_block = model.SE_block
        self.train(model.training)
