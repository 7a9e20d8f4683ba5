"""Training objective: the official HEAD loss plus optional plain terms.

All terms take the *raw* prediction (not blended with the composite), as the
official trainer does, in [0, 1] units unless stated otherwise.
"""
from __future__ import annotations

import torch
import torch.nn as nn


def psnr_loss(pred: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """100 / PSNR, PSNR = 10 log10(1 / MSE) with the MSE over the whole batch (official PSNRLossPositive)."""
    mse = torch.mean((pred - real) ** 2)
    psnr = 10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))
    return 100.0 / (1e-7 + psnr)


def fn_mse(pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor, min_area: float = 100.0,
           scale: float = 1.0) -> torch.Tensor:
    """Foreground-normalised MSE: sum of squared errors / (3 * max(area, min_area)), batch mean.

    ``scale`` 1 works in [0, 1] units, as the official trainer does (its FnMSE sees
    the raw [0, 1] prediction); 255 gives the 0-255 units of the fMSE metric.
    """
    se = ((pred - real) * scale) ** 2
    per = se.flatten(1).sum(1) / (3.0 * mask.flatten(1).sum(1).clamp_min(min_area))
    return per.mean()


def masked_gradient_l1(pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 between forward differences of real*mask and pred*mask (last row/column zero), mean of dx and dy."""
    p, r = pred * mask, real * mask

    def grads(x):
        dx = torch.zeros_like(x)
        dy = torch.zeros_like(x)
        dx[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
        dy[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
        return dx, dy

    pdx, pdy = grads(p)
    rdx, rdy = grads(r)
    return 0.5 * ((pdx - rdx).abs().mean() + (pdy - rdy).abs().mean())


def masked_l1(pred, real, mask):
    return ((pred - real).abs() * mask).sum() / (3.0 * mask.sum()).clamp_min(1.0)


class HarmonizationLoss(nn.Module):
    """Weighted sum of the terms named in the ``[loss]`` config table; returns (total, parts), the parts
    as detached 0-dim tensors (read when the loop logs them, not every step)."""

    TERMS = ("psnr", "fnmse", "gradient", "mse", "l1")

    def __init__(self, psnr=0.2, fnmse=0.01, gradient=0.01, mse=0.0, l1=0.0, fnmse_min_area=100,
                 fnmse_scale=1.0):
        super().__init__()
        self.weights = {"psnr": float(psnr), "fnmse": float(fnmse), "gradient": float(gradient),
                        "mse": float(mse), "l1": float(l1)}
        if not any(self.weights.values()):
            raise ValueError("every loss weight is 0: set at least one of loss.psnr/fnmse/gradient/mse/l1")
        self.min_area = float(fnmse_min_area)
        self.fnmse_scale = float(fnmse_scale)

    @classmethod
    def from_config(cls, table: dict) -> "HarmonizationLoss":
        unknown = set(table) - set(cls.TERMS) - {"fnmse_min_area", "fnmse_scale"}
        if unknown:
            raise KeyError(f"unknown loss term(s) {sorted(unknown)}; known: {cls.TERMS}")
        return cls(**table)

    def forward(self, pred, real, mask):
        pred, real, mask = pred.float(), real.float(), mask.float()
        parts = {}
        w = self.weights
        if w["psnr"]:
            parts["psnr"] = psnr_loss(pred, real)
        if w["fnmse"]:
            parts["fnmse"] = fn_mse(pred, real, mask, self.min_area, self.fnmse_scale)
        if w["gradient"]:
            parts["gradient"] = masked_gradient_l1(pred, real, mask)
        if w["mse"]:
            parts["mse"] = torch.mean((pred - real) ** 2)
        if w["l1"]:
            parts["l1"] = masked_l1(pred, real, mask)
        total = sum(w[k] * v for k, v in parts.items())
        return total, {k: v.detach() for k, v in parts.items()}
