"""Patch-based Feature Extractor (PFE) and the modified squeeze-and-excitation gate it feeds."""

from __future__ import annotations

import torch
from torch import nn

from .patches import Partition, full_precision, partition


def mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and unbiased std over all pixels (two passes; faster than Tensor.std on CPU)."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    centred = x - mean
    var = (centred * centred).sum(dim=(2, 3), keepdim=True) / max(x.shape[-2] * x.shape[-1] - 1, 1)
    return mean, var.sqrt()


class PatchColorTransfer(nn.Module):
    """Reinhard-style transfer of the foreground towards the background, per patch and globally.

    Statistics are taken over all pixels of a patch (the zeroed-out region included) with the
    unbiased std, as the official code does; ``grid_weights`` mixes the local and global branches.

    With a reference (``reference`` = the image inside the reference region, zero elsewhere, and
    ``region`` that region) the background statistics are those of the reference image, computed the
    same way, globally and per patch; where the region has no pixel they stay the background's.
    """

    def __init__(self, grid: int, init_weights: tuple[float, float] = (0.9, 0.1), eps: float = 1e-8) -> None:
        super().__init__()
        self.grid, self.eps = grid, eps
        self.grid_weights = nn.Parameter(torch.tensor(init_weights, dtype=torch.float32))

    def patch_stats(self, x: torch.Tensor, patches: Partition) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-patch mean and unbiased std of ``x`` (B×C×G×G each), over every pixel of the patch."""
        count = patches.sums(torch.ones_like(x[:1, :1]))
        mean = patches.sums(x) / count.clamp(min=1)
        centred = x - patches.expand(mean)
        var = patches.sums(centred * centred) / (count - 1).clamp(min=1)
        return mean, var.sqrt()

    @full_precision
    def forward(
        self,
        fg: torch.Tensor,
        bg: torch.Tensor,
        reference: torch.Tensor | None = None,
        region: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``fg`` (B×C×H×W) moved towards the statistics of ``bg``, or of ``reference`` inside ``region``."""
        patches = partition(fg, self.grid)
        mu_f, sd_f = self.patch_stats(fg, patches)
        mu_b, sd_b = self.patch_stats(bg, patches)
        gmu_f, gsd_f = mean_std(fg)
        gmu_b, gsd_b = mean_std(bg)
        if reference is not None:
            if region is None:
                raise ValueError("a reference image needs its region (B×1×H×W, 1 where the reference is): give "
                                 "both, or neither")
            in_patch = patches.sums(region) > 0
            in_image = region.sum(dim=(2, 3), keepdim=True) > 0
            ref_mu, ref_sd = self.patch_stats(reference, patches)
            ref_gmu, ref_gsd = mean_std(reference)
            mu_b, sd_b = torch.where(in_patch, ref_mu, mu_b), torch.where(in_patch, ref_sd, sd_b)
            gmu_b, gsd_b = torch.where(in_image, ref_gmu, gmu_b), torch.where(in_image, ref_gsd, gsd_b)
        # local and global transfers are both affine in fg: fold them into one per-patch scale and shift
        w0, w1 = self.grid_weights[0], self.grid_weights[1]
        local_ratio = sd_b / (sd_f + self.eps)
        global_ratio = gsd_b / (gsd_f + self.eps)
        scale = w0 * local_ratio + w1 * global_ratio
        shift = w0 * (mu_b - mu_f * local_ratio) + w1 * (gmu_b - gmu_f * global_ratio)
        return fg * patches.expand(scale) + patches.expand(shift)


class PatchFeatureExtractor(nn.Module):
    """[F, transfer(F → B) inside the mask] → Conv3×3 → ReLU: a 3-channel map whose peak gates the bottleneck."""

    def __init__(self, grid: int, channels: int = 3) -> None:
        super().__init__()
        self.patch_harmonizer = PatchColorTransfer(grid)
        self.head = nn.Sequential(nn.Conv2d(2 * channels, channels, 3, padding=1), nn.Identity(), nn.ReLU())

    def forward(self, image: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        """``reference`` (optional B×1×H×W): the part of the background the transfer aims at."""
        fg, bg = image * mask, image * (1 - mask)
        if reference is None:
            transfer = self.patch_harmonizer(fg, bg)
        else:
            region = reference * (1 - mask)
            transfer = self.patch_harmonizer(fg, bg, image * region, region)
        # The official block feeds the head the transfer blended with the background scaled by 1/255
        # (its harmonizer returns (blend, transfer) and the block keeps the first); the released
        # weights were trained with exactly this input.
        transferred = transfer * mask + bg / 255.0 * (1 - mask)
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
        """``x`` (B×C×h×w, the bottleneck) gated by its channel attention and the PFE map ``features``."""
        se = self.fc(x.mean(dim=(2, 3)))[:, :, None, None]
        q = torch.sigmoid(features.amax(dim=(2, 3), keepdim=True).mean(dim=1, keepdim=True))
        return x * se + x * q
