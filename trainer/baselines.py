"""Classical baselines for the evaluation tables.

* ``composite``: do nothing (the harmonisation error of the input itself);
* ``reinhard``: colour transfer in CIE Lab (Reinhard et al. 2001): the foreground's
  per-channel mean and standard deviation are moved to those of the background;
* ``mkl``: the Monge-Kantorovich linear colour transfer (Pitié & Kokaram 2007), the default of
  the color-matcher library behind ComfyUI's "Color Match" nodes: the affine RGB map that moves
  the foreground's colour distribution (mean and covariance) onto the background's.
"""
from __future__ import annotations

import numpy as np
import torch

from trainer.colour import lab_to_rgb, masked_stats, rgb_to_lab


def reinhard_lab(comp: np.ndarray, mask: np.ndarray, *, min_std: float = 1e-3) -> np.ndarray:
    """Float HxWx3 composite in [0, 1] and HxW mask -> the composite with a Lab-transferred foreground."""
    comp = np.asarray(comp, dtype=np.float64)
    m = (np.asarray(mask, dtype=np.float64) >= 0.5)
    if not m.any() or m.all():
        return comp.astype(np.float32)  # nothing to match against
    lab = rgb_to_lab(comp)
    fg_mean, fg_std = masked_stats(lab, m)
    bg_mean, bg_std = masked_stats(lab, ~m)
    moved = (lab - fg_mean) / np.maximum(fg_std, min_std) * bg_std + bg_mean
    moved[..., 0] = np.clip(moved[..., 0], 0, 100)
    out = np.where(m[..., None], lab_to_rgb(moved), comp)
    return out.astype(np.float32)


def _sqrtm(cov: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(cov)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def mkl_transfer(comp: np.ndarray, mask: np.ndarray, *, eps: float = 1e-6) -> np.ndarray:
    """Float HxWx3 composite in [0, 1] and HxW mask -> the foreground moved onto the background's
    colour mean and covariance by the Monge-Kantorovich linear map (the closed-form optimal
    transport between two Gaussians)."""
    comp = np.asarray(comp, dtype=np.float64)
    m = np.asarray(mask, dtype=np.float64) >= 0.5
    if m.sum() < 2 or (~m).sum() < 2:  # a covariance needs two pixels on each side
        return comp.astype(np.float32)
    fg, bg = comp[m], comp[~m]
    mu_s, mu_t = fg.mean(0), bg.mean(0)
    cov_s = np.cov(fg, rowvar=False) + eps * np.eye(3)
    cov_t = np.cov(bg, rowvar=False) + eps * np.eye(3)
    root_s = _sqrtm(cov_s)
    inv_root_s = np.linalg.inv(root_s)
    transport = inv_root_s @ _sqrtm(root_s @ cov_t @ root_s) @ inv_root_s
    out = comp.copy()
    out[m] = np.clip((fg - mu_s) @ transport + mu_t, 0, 1)  # the map is symmetric: x·T = T·x
    return out.astype(np.float32)


def _per_image(fn, comp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    outs = []
    for c, m in zip(comp.detach().cpu(), mask.detach().cpu()):
        o = fn(c.permute(1, 2, 0).numpy(), m[0].numpy())
        outs.append(torch.from_numpy(o).permute(2, 0, 1))
    return torch.stack(outs).to(comp.device, comp.dtype)


def reinhard_batch(comp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Bx3xHxW / Bx1xHxW tensors -> Bx3xHxW (computed in numpy on the CPU)."""
    return _per_image(reinhard_lab, comp, mask)


def mkl_batch(comp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Bx3xHxW / Bx1xHxW tensors -> Bx3xHxW (computed in numpy on the CPU)."""
    return _per_image(mkl_transfer, comp, mask)
