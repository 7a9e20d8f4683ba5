"""Validation during training: blend the prediction, score it with phnet.metrics."""
from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import torch


NEAR_RIGHT_FMSE = 300.0  # a composite whose own fMSE is below this is already nearly harmonious


def amp_available(device: torch.device) -> bool:
    """Mixed precision pays off where the device computes a low precision natively (``phnet.precision``,
    the one policy inference also follows): bf16 on CPUs with AMX and on GPUs from compute capability 8,
    fp16 on 7.x."""
    from phnet.precision import native_low_precision

    return native_low_precision(device) is not None


def autocast_for(device: torch.device, amp: torch.dtype | None):
    """Autocast to ``amp``, the precision decided once per run for every process (``train.amp``,
    ``amp_available``), not per step; None: fp32."""
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp)


def validation_photos(dataset) -> str | None:
    """A fingerprint of the files a validation set is made from, in its order (resolved paths and sizes): a
    resume tells by it whether the scores before it are comparable. None for a data set without records."""
    indices = None
    while isinstance(dataset, torch.utils.data.Subset):
        indices = [dataset.indices[i] for i in indices] if indices is not None else list(dataset.indices)
        dataset = dataset.dataset
    records = getattr(dataset, "records", None)
    if records is None:
        return None
    digest = hashlib.sha256()
    for record in (records[i] for i in indices) if indices is not None else records:
        digest.update(f"{record.name}\0".encode())
        for path in (record.real, record.mask, record.comp):
            path = Path(path).resolve() if path is not None else None
            size = path.stat().st_size if path is not None and path.is_file() else -1
            digest.update(f"{path}\0{size}\0".encode())
    return digest.hexdigest()


def picture_share(batch: dict, like: torch.Tensor) -> torch.Tensor:
    """Each sample's share of its square that is picture (B, float64): 1, or for a picture padded to the square
    (``box``, resize "pad") its box's. A whole-picture error measured over the square is divided by it: the
    padding is the same in the output and the photo, and counted as error-free pixels it diluted the mean."""
    if "box" not in batch:
        return torch.ones(like.shape[0], dtype=torch.float64)
    box = batch["box"].double()
    return box[:, 2] * box[:, 3] / (like.shape[-2] * like.shape[-1])


@torch.no_grad()
def validate(model: torch.nn.Module, loader, device: torch.device, *,
             amp: torch.dtype | None = None) -> dict[str, float | None]:
    """Mean per-image MSE/fMSE/PSNR/fPSNR of the model and of the untouched composite.

    Also the two "do no harm" figures: ``near_right_fmse`` (and the composites' own
    ``composite_near_right_fmse``) over composites whose fMSE is below ``NEAR_RIGHT_FMSE``, and
    ``untouched_mse``, the MSE of the change the model makes when given the real photo itself. The two
    near-right figures are None where no composite is near right (``near_right_n`` 0).
    """
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
                pred_real = model(real, mask)
            out = metrics.blend(pred.float().clamp(0, 1), comp, mask)
            out_real = metrics.blend(pred_real.float().clamp(0, 1), real, mask)
            comp_fmse = metrics.fmse(comp, real, mask)
            near = (comp_fmse < NEAR_RIGHT_FMSE).double()
            mse = metrics.mse(out, real)
            share = picture_share(batch, comp).to(mse.device)  # where the metrics are (the CPU for Apple's GPU)
            mse = mse / share
            vals = {
                "mse": mse, "fmse": metrics.fmse(out, real, mask),
                "psnr": metrics.psnr_of(mse, real), "fpsnr": metrics.fpsnr(out, real, mask),
                "composite_mse": metrics.mse(comp, real) / share, "composite_fmse": comp_fmse,
                "untouched_mse": metrics.mse(out_real, real) / share,
                "near_right_fmse": metrics.fmse(out, real, mask).double() * near,
                "composite_near_right_fmse": comp_fmse.double() * near, "near_right_n": near,
            }
            for k, v in vals.items():
                sums[k] = sums.get(k, 0.0) + float(v.double().sum())
            n += comp.shape[0]
    finally:
        model.train(was_training)
    near_n = sums.pop("near_right_n", 0.0)
    # no near-right composite in the split: no score for them (None, not 0, which would read as a perfect one)
    scores: dict[str, float | None] = {
        k: (v / near_n if near_n else None) if "near_right" in k else v / max(n, 1) for k, v in sums.items()}
    scores["near_right_n"] = int(near_n)
    scores["n"] = n
    scores["skipped"] = skipped
    return scores
