"""Patch-based Normalization (PN): re-styles foreground features with background statistics."""

from __future__ import annotations

import torch
from torch import nn

from .patches import Partition, full_precision, partition


class PatchNormalization(nn.Module):
    """Foreground = mix of a global and a patch-aware re-styling with background statistics.

    With X̂ = (X − μF)/σF:  global = (X̂σB + μB)·γF + βF,  patch = (X̂σB + Σ W_ij μB_ij)·γP + βP,
    foreground = λ0·global + λ1·patch; background = (X − μB)/σB·γB + βB. Parameter names follow the
    official state_dict. Every branch is an affine map of X per sample and channel, so the block is
    computed as one scale and one shift per region.

    ``reference`` (B×1×H×W, optional) restricts the statistics the foreground is re-styled towards
    (μB, σB and the patch means μB_ij) to the background pixels it covers. An image whose reference
    holds no background pixel, or a patch without any, keeps the whole background's statistics. The
    background branch still normalises the background with its own statistics: it is how the
    network saw the background in training; only the foreground's target moves.
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

    @full_precision
    def forward(self, x: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (B×C×H×W) with its foreground (``mask``, B×1×H×W in 0..1) re-styled, in fp32 at least."""
        eps = self.eps
        background = 1 - mask
        patches = partition(x, self.grid)
        # Masked statistics as in the official block: μ = Σxr / (Σr + ε), σ² = Σ((x − μ)r)² / (Σr + ε) + ε, as
        # matrix products over x; the variance from x − μ (expanded in one pass, a subject whose mean is far
        # above its spread lost its variance to cancellation in fp32)
        regions = torch.cat([mask, background], dim=1).flatten(2).transpose(1, 2)  # B×HW×2
        squared = regions * regions
        flat = x.flatten(2)
        counts = regions.sum(dim=1)[:, None, :]
        mean = (flat @ regions) / (counts + eps)
        var = torch.cat([(flat - mean[..., r, None]).square() @ squared[..., r, None] for r in (0, 1)], dim=-1)
        var = var / (counts + eps)
        std = torch.sqrt(var.clamp(min=0) + eps)
        mu_f, mu_b = mean[..., 0, None, None], mean[..., 1, None, None]
        sd_f, sd_b = std[..., 0, None, None], std[..., 1, None, None]

        # Σ_ij W_ij·μB_ij: the learnt mix of per-patch background means (a patch with no background counts 0)
        patch_means = patches.sums(x * background) / (patches.sums(background) + eps)
        bg_mu, bg_sd = mu_b, sd_b  # the background branch keeps the whole background's statistics
        if reference is not None:
            mu_b, sd_b, patch_means = restrict_to_reference(
                x, reference * background, patches, (mu_b, sd_b, patch_means), eps, background=background
            )
        mu_patch = (patch_means * self.grid_weights).sum(dim=(2, 3), keepdim=True)

        w0, w1 = self.weights[0], self.weights[1]
        ratio = sd_b / sd_f
        gain = w0 * self.fg_var + w1 * self.patched_fg_var
        fg_scale = ratio * gain
        fg_shift = (
            w0 * (mu_b * self.fg_var + self.fg_bias)
            + w1 * (mu_patch * self.patched_fg_var + self.patched_fg_bias)
            - mu_f * fg_scale
        )
        bg_scale = self.bg_var / bg_sd
        bg_shift = self.bg_bias - bg_mu * bg_scale
        foreground = torch.addcmul(fg_shift, x, fg_scale)
        return torch.lerp(torch.addcmul(bg_shift, x, bg_scale), foreground, mask)

    def extra_repr(self) -> str:
        """The sizes shown in the module's repr."""
        return f"channels={self.channels}, grid={self.grid}"


def restrict_to_reference(
    x: torch.Tensor,
    region: torch.Tensor,
    patches: Partition,
    background_stats: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    eps: float,
    *,
    background: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(μ, σ, patch means) over ``region`` (B×1×H×W, the reference part of ``background``), each
    replaced by the whole background's value (``background_stats``) where the region has no pixel, or
    all of the background's pixels: then they are the same numbers, not a second sum that rounds apart."""
    mu_b, sd_b, patch_means_b = background_stats
    count = region.sum(dim=(2, 3), keepdim=True)
    mu = (x * region).sum(dim=(2, 3), keepdim=True) / (count + eps)
    sd = torch.sqrt((((x - mu) * region) ** 2).sum(dim=(2, 3), keepdim=True) / (count + eps) + eps)
    patch_count = patches.sums(region)
    patch_means = patches.sums(x * region) / (patch_count + eps)
    left_out = background - region  # the background pixels outside the reference (none is negative)
    own = (count > 0) & (left_out.sum(dim=(2, 3), keepdim=True) > 0)
    patch_own = (patch_count > 0) & (patches.sums(left_out) > 0)
    return (
        torch.where(own, mu, mu_b),
        torch.where(own, sd, sd_b),
        torch.where(patch_own, patch_means, patch_means_b),
    )
