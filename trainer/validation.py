"""Validation during training: blend the prediction, score it with phnet.metrics."""
from __future__ import annotations

import contextlib

import torch


def autocast_for(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


@torch.no_grad()
def validate(model: torch.nn.Module, loader, device: torch.device, *, amp: bool = False) -> dict:
    """Mean per-image MSE/fMSE/PSNR/fPSNR of the model and of the untouched composite."""
    from phnet import metrics

    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    n = skipped = 0
    try:
        for batch in loader:
            skipped += batch.get("skipped", 0)
            if "comp" not in batch:
                continue
            comp, real, mask = (batch[k].to(device) for k in ("comp", "real", "mask"))
            with autocast_for(device, amp):
                pred = model(comp, mask)
            out = metrics.blend(pred.float().clamp(0, 1), comp, mask)
            vals = {
                "mse": metrics.mse(out, real), "fmse": metrics.fmse(out, real, mask),
                "psnr": metrics.psnr(out, real), "fpsnr": metrics.fpsnr(out, real, mask),
                "composite_mse": metrics.mse(comp, real), "composite_fmse": metrics.fmse(comp, real, mask),
            }
            for k, v in vals.items():
                sums[k] = sums.get(k, 0.0) + float(v.double().sum())
            n += comp.shape[0]
    finally:
        model.train(was_training)
    out = {k: v / max(n, 1) for k, v in sums.items()}
    out["n"] = n
    out["skipped"] = skipped
    return out
