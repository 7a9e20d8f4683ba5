"""Classical baselines for the evaluation tables.

* ``composite``: do nothing (the harmonisation error of the input itself);
* ``reinhard``: colour transfer in CIE Lab (Reinhard et al. 2001): the foreground's
  per-channel mean and standard deviation are moved to those of the background.
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


def reinhard_batch(comp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Bx3xHxW / Bx1xHxW tensors -> Bx3xHxW (computed in numpy on the CPU)."""
    outs = []
    for c, m in zip(comp.detach().cpu(), mask.detach().cpu()):
        o = reinhard_lab(c.permute(1, 2, 0).numpy(), m[0].numpy())
        outs.append(torch.from_numpy(o).permute(2, 0, 1))
    return torch.stack(outs).to(comp.device, comp.dtype)
