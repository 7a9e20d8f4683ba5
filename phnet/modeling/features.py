"""Patch-based Feature Extractor (PFE) and the modified squeeze-and-excitation gate it feeds."""

from __future__ import annotations

import torch
from torch import nn

from .patches import expand_patches, partition, patch_sums


class PatchColorTransfer(nn.Module):
    """Reinhard-style transfer of the foreground towards the background, per patch and globally.

    Statistics are taken over all pixels of a patch (the zeroed-out region included) with the
    unbiased std, as the official code does; ``grid_weights`` mixes the local and global branches.
    """

    def __init__(self, grid: int, init_weights: tuple[float, float] = (0.9, 0.1), eps: float = 1e-8) -> None:
        super().__init__()
        self.grid, self.eps = grid, eps
        self.grid_weights = nn.Parameter(torch.tensor(init_weights, dtype=torch.float32))

    def patch_stats(self, x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor):
        count = patch_sums(torch.ones_like(x[:1, :1]), rows, cols)
        mean = patch_sums(x, rows, cols) / count.clamp(min=1)
        centred = x - expand_patches(mean, rows, cols)
        var = patch_sums(centred * centred, rows, cols) / (count - 1).clamp(min=1)
        return expand_patches(mean, rows, cols), expand_patches(var.sqrt(), rows, cols)

    def forward(self, fg: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
        rows, cols = partition(fg, self.grid)
        mu_f, sd_f = self.patch_stats(fg, rows, cols)
        mu_b, sd_b = self.patch_stats(bg, rows, cols)
        local = (fg - mu_f) * (sd_b / (sd_f + self.eps)) + mu_b

        gmu_f, gsd_f = fg.mean(dim=(2, 3), keepdim=True), fg.std(dim=(2, 3), keepdim=True)
        gmu_b, gsd_b = bg.mean(dim=(2, 3), keepdim=True), bg.std(dim=(2, 3), keepdim=True)
        global_ = (fg - gmu_f) * (gsd_b / (gsd_f + self.eps)) + gmu_b
        return self.grid_weights[0] * local + self.grid_weights[1] * global_


class PatchFeatureExtractor(nn.Module):
    """[F, transfer(F → B) inside the mask] → Conv3×3 → ReLU: a 3-channel map whose peak gates the bottleneck."""

    def __init__(self, grid: int, channels: int = 3) -> None:
        super().__init__()
        self.patch_harmonizer = PatchColorTransfer(grid)
        self.head = nn.Sequential(nn.Conv2d(2 * channels, channels, 3, padding=1), nn.Identity(), nn.ReLU())

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        fg, bg = image * mask, image * (1 - mask)
        # The official block feeds the head the transfer blended with the background scaled by 1/255
        # (its harmonizer returns (blend, transfer) and the block keeps the first); the released
        # weights were trained with exactly this input.
        transferred = self.patch_harmonizer(fg, bg) * mask + bg / 255.0 * (1 - mask)
        return self.head(torch.cat([fg, transferred], dim=1))


class SqueezeExcitationGate(nn.Module):
    """x·(SE(x) + q), where q = sigmoid(mean over channels of the global max of the PFE map).

    q is one scalar per image, broadcast over all channels, as in the official code.
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction),
            nn.ReLU(),
            nn.Linear(channels // reduction, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        se = self.fc(x.mean(dim=(2, 3)))[:, :, None, None]
        q = torch.sigmoid(features.amax(dim=(2, 3), keepdim=True).mean(dim=1, keepdim=True))
        return x * se + x * q
