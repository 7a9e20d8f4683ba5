"""Scoring: each sample's metrics for every method, its foreground and composite-error buckets, what a method
does to an untouched photo, and the means the report's tables show."""
from __future__ import annotations

import numpy as np
import torch

from trainer.evaluation.candidates import Candidates


METRICS = ("MSE", "fMSE", "PSNR", "fPSNR", "PSNR255", "fPSNR255")


ERROR_BUCKETS = ("<300", "300-1000", ">=1000")


def error_bucket(composite_fmse: float) -> str:
    return ERROR_BUCKETS[0] if composite_fmse < 300 else ERROR_BUCKETS[1] if composite_fmse < 1000 else ERROR_BUCKETS[2]


def _means(rows: list[dict]) -> dict:
    out = {m: float(np.mean([r[m] for r in rows])) for m in METRICS if rows}
    out["count"] = len(rows)
    return out


def summarise(rows: list[dict], untouched: list[dict], methods: list[str]) -> dict:
    def by(key: str, order=None) -> dict:
        keys = order or sorted({r[key] for r in rows})
        table = {}
        for k in keys:
            sel = [r for r in rows if r[key] == k]
            if sel:
                table[k] = {m: _means([r for r in sel if r["method"] == m]) for m in methods}
        return table

    from phnet.metrics import BUCKETS

    summary = {
        "overall": {m: _means([r for r in rows if r["method"] == m]) for m in methods},
        "subsets": by("subset"),
        "fg_ratio": by("fg_bucket", list(BUCKETS)),
        "composite_error": by("error_bucket", list(ERROR_BUCKETS)),
    }
    if any(r.get("identity") for r in rows):  # their PSNR is ~108 dB (MSE + 1e-6): the means lean on them
        summary["without_identity"] = {m: _means([r for r in rows if r["method"] == m and not r.get("identity")])
                                       for m in methods}
    if untouched:
        summary["untouched"] = {
            m: {"MSE": float(np.mean([r["MSE"] for r in untouched if r["method"] == m])),
                "fMSE": float(np.mean([r["fMSE"] for r in untouched if r["method"] == m])),
                "count": sum(1 for r in untouched if r["method"] == m)}
            for m in methods if m != "composite"}
    return summary


def scores(out: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """``phnet.metrics.all_metrics`` and the same PSNRs with the fixed peak 255 (see ``report.PEAKS``)."""
    from phnet import metrics

    per = metrics.all_metrics(out, real, mask)
    for name, err in (("PSNR255", per["MSE"]), ("fPSNR255", per["fMSE"])):
        per[name] = 10 * torch.log10(255.0 ** 2 / (err + metrics.PSNR_EPS))
    return per


def pictures(batch: dict, tensors: dict[str, torch.Tensor]) -> list[tuple[dict, dict[str, torch.Tensor]]]:
    """``tensors`` (each B×C×S×S) with the batch's ``name`` and ``subset``: as they are, or, for pictures padded
    to the square (``box``, resize "pad"), one sample at a time cut to the picture, so that the padding, equal
    in every method's output and the photo, does not count as error-free pixels."""
    if "box" not in batch:
        return [(batch, tensors)]
    out = []
    for i, (top, left, h, w) in enumerate(batch["box"].tolist()):
        out.append(({"name": batch["name"][i:i + 1], "subset": batch["subset"][i:i + 1]},
                    {k: t[i:i + 1, :, top:top + h, left:left + w] for k, t in tensors.items()}))
    return out


def score_rows(batch: dict, outs: dict[str, torch.Tensor], real, mask, methods: list[str]) -> list[dict]:
    """One row per sample and method: its metrics, subset and buckets."""
    from phnet import metrics

    per = {m: scores(o, real, mask) for m, o in outs.items()}
    fg = metrics.fg_bucket(mask)
    rows = []
    for i in range(real.shape[0]):
        eb = error_bucket(float(per["composite"]["fMSE"][i]))
        identity = float(per["composite"]["MSE"][i]) == 0.0  # the composite is its photo (an identity pair)
        for m in methods:
            rows.append({"method": m, "name": batch["name"][i], "subset": batch["subset"][i] or "all",
                         "fg_bucket": fg[i], "error_bucket": eb, "identity": identity,
                         **{k: float(per[m][k][i]) for k in METRICS}})
    return rows


def untouched_rows(candidates: Candidates, batch: dict, real, mask) -> list[dict]:
    """What each method does to the real photo itself (do no harm: ideally nothing)."""
    from phnet import metrics

    rows = []
    boxes = batch["box"].tolist() if "box" in batch else None
    for _, t in pictures(batch, {"real": real, "mask": mask, **candidates.outputs(real, mask, boxes)}):
        for m in [k for k in t if k not in ("real", "mask")]:
            mse, fmse = metrics.mse(t[m], t["real"]), metrics.fmse(t[m], t["real"], t["mask"])
            rows += [{"method": m, "MSE": float(mse[i]), "fMSE": float(fmse[i])} for i in range(mse.shape[0])]
    return rows
