"""iHarmony4-style metrics: MSE, fMSE, PSNR, fPSNR in 0–255 units, per image, on blended predictions.

Conventions follow the official PHNet evaluation (tools/metrics.py): the prediction is blended
with the composite first, values are scaled to 0–255 without quantisation, fMSE divides the
foreground squared error by 3·N_fg, and PSNR uses the ground truth's own peak (max(gt)²).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any

import torch

from .compat import aminmax
from .imageio.images import UNIT_SLACK
from .imageio.masks import trace_bar

BUCKETS = ("0-5%", "5-15%", "15-100%")
FMSE_EPS = 1e-6
PSNR_EPS = 1e-6


def _per_image(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1)


def _check(pred: torch.Tensor, gt: torch.Tensor) -> None:
    if pred.shape != gt.shape or pred.ndim != 4 or pred.shape[1] != 3:
        rgba = any(x.ndim == 4 and x.shape[1] == 4 for x in (pred, gt))
        alpha = "; drop the alpha channel (x[:, :3])" if rgba else ""
        raise ValueError(f"pred and gt must both be B×3×H×W, got {tuple(pred.shape)} and {tuple(gt.shape)}{alpha}")
    if not (pred.is_floating_point() and gt.is_floating_point()):  # 0..255 read as 0..1 is 65025 times the error
        raise ValueError(f"pred and gt must be float pictures in 0..1, got {pred.dtype} and {gt.dtype}: divide "
                         "8-bit ones by 255")
    if not gt.numel():
        return
    # one read of both ranges; a prediction may over- or undershoot 0..1 before it is clamped, a photo may not. A NaN
    # prediction (a diverged model) scores NaN, which the trainer records and passes over for best/; the range of
    # the rest of it is still checked
    p_lo, p_hi, g_lo, g_hi = torch.stack([v.float() for v in (*aminmax(pred), *aminmax(gt))]).tolist()
    if math.isnan(p_lo) or math.isnan(p_hi):  # read again without them (a copy, in this rare case only)
        p_lo, p_hi = (float(v) for v in aminmax(pred.nan_to_num(0.5, math.inf, -math.inf)))
    for name, lo, hi in (("pred", p_lo, p_hi), ("gt", g_lo, g_hi)):
        if not (math.isfinite(lo) and math.isfinite(hi)):
            why = "a diverged model, a division by zero" if name == "pred" else "a division by zero"
            raise ValueError(f"pred and gt must be pictures in 0..1, got {'' if name == 'pred' else 'NaN or '}"
                             f"infinite values in {name}: find where they come from ({why})")
    if g_hi > 1 + UNIT_SLACK or p_hi > 2:
        raise ValueError(f"pred and gt must be pictures in 0..1, got values up to {p_hi:g} and {g_hi:g}: divide "
                         "0..255 ones by 255")
    if g_lo < -UNIT_SLACK or p_lo < -1:
        raise ValueError(f"pred and gt must be pictures in 0..1, got values down to {p_lo:g} and {g_lo:g}: map "
                         "-1..1 pictures with (x + 1) / 2")


def wide(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float64 for a metric's sums; on the CPU where the device has no float64 (Apple's GPU)."""
    return (x.cpu() if x.device.type == "mps" else x).double()


def mse(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """The mean squared error per picture (B, float64) in 0–255 units, of B×3×H×W float pictures in 0..1."""
    _check(pred, gt)
    return ((wide(pred) - wide(gt)) * 255).pow(2).flatten(1).mean(dim=1)


def _check_mask(mask: torch.Tensor, pred: torch.Tensor) -> None:
    if tuple(mask.shape) != (pred.shape[0], 1, *pred.shape[2:]):
        raise ValueError(f"the mask must be B×1×H×W for pictures of {tuple(pred.shape)}, got {tuple(mask.shape)}; "
                         + _mask_shape_fix(mask, pred))
    _check_mask_scale(mask)


def _mask_shape_fix(mask: torch.Tensor, pred: torch.Tensor) -> str:
    if mask.ndim == 3:
        return "add the channel axis (mask[:, None]): a B×H×W mask would pair mask k with channel k"
    if mask.ndim == 2:
        return "add the batch and channel axes (mask[None, None] for one picture)"
    if mask.ndim != 4:
        return f"give it four axes, not {mask.ndim}"
    if mask.shape[0] != pred.shape[0]:
        return f"give one mask per picture, not {mask.shape[0]} for {pred.shape[0]} pictures"
    if mask.shape[3] == 1 and mask.shape[1:3] == pred.shape[2:]:
        return "put its channel axis second (mask.permute(0, 3, 1, 2))"
    if mask.shape[1] != 1:
        return f"give it one channel, not {mask.shape[1]}"
    return f"its size {mask.shape[2]}×{mask.shape[3]} is not the pictures' {pred.shape[2]}×{pred.shape[3]}: resize it"


def _check_mask_scale(mask: torch.Tensor) -> None:
    if mask.dtype == torch.bool:
        return
    if not mask.is_floating_point():  # levels 1..255 read as 0..1 are all subject
        raise ValueError(f"the mask must be a float mask in 0..1 (or bool), got {mask.dtype}: divide an 8-bit one "
                         "by 255")
    if mask.numel() and float(mask.amax()) > 1 + 1e-3:
        raise ValueError(f"the mask must be in 0..1, got values up to {float(mask.amax()):g}: divide a 0..255 one "
                         "by 255")


def _which(bad: torch.Tensor) -> tuple[bool, str]:
    """(several?, " of pictures 1, 3") for a batch's flags of the pictures a message is about ("" for one picture)."""
    indices = bad.nonzero().flatten().tolist()
    many = len(indices) > 1
    return many, "" if bad.shape[0] == 1 else f" of picture{'s' * many} {', '.join(map(str, indices))}"


def _subject(mask: torch.Tensor, what: str) -> torch.Tensor:
    """The B×1×H×W ``mask``'s subject, its pixels >= 0.5, as 0/1 in float64; a mask with none is refused (a faint
    matte or an empty mask scored fMSE 0, a perfect score, for a picture visibly wrong)."""
    m = wide(mask >= 0.5)
    found = m.flatten(1).amax(dim=1) if m.numel() else None
    if found is not None and not bool(found.all()):
        many, which = _which(found == 0)
        raise ValueError(f"the mask{'s' * many}{which} {'have' if many else 'has'} no subject pixel (none >= 0.5): "
                         f"{what} is undefined; give a binary mask, or cut a soft one at a lower level (mask >= 0.25, "
                         "say)")
    return m


def fmse(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The squared error over the subject (the mask's pixels >= 0.5) in 0–255 units; a ValueError for a mask with
    no such pixel (an empty one, a faint matte)."""
    _check(pred, gt)
    _check_mask(mask, pred)
    m = _subject(mask, "fMSE")
    err = ((wide(pred) - wide(gt)) * 255).pow(2) * m
    return err.flatten(1).sum(dim=1) / (3 * m.flatten(1).sum(dim=1) + FMSE_EPS)


def psnr_of(err: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """PSNR from a (f)MSE already measured, against the photo's own peak. A ground truth black everywhere has none
    (its PSNR would be -inf even for a perfect prediction, and so would the mean of a set holding it) and is refused
    with a ValueError; the trainer's evaluation and validation sets refuse such a photo by name, as a bad sample."""
    peak = (wide(gt) * 255).flatten(1).amax(dim=1)
    if bool((peak <= 0).any()):
        many, which = _which(peak <= 0)
        raise ValueError(f"the ground truth{'s' * many}{which} {'are' if many else 'is'} black everywhere: PSNR "
                         "with its own peak is undefined; score it with the fixed peak 255 (10·log10(255² / MSE), "
                         "trainer.evaluate's PSNR255)")
    return 10 * torch.log10(peak.pow(2) / (err + PSNR_EPS))


def psnr(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """PSNR per picture (B, in dB) from :func:`mse`, against each ground truth's own peak."""
    return psnr_of(mse(pred, gt), gt)


def fpsnr(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PSNR per picture (B, in dB) from :func:`fmse`, the error over the subject only, against each ground
    truth's own peak."""
    return psnr_of(fmse(pred, gt, mask), gt)


def fg_ratio(mask: torch.Tensor) -> torch.Tensor:
    """The share of each B×1×H×W mask's pixels that are subject (>= 0.5), from 0 to 1; a ValueError for a mask
    with no such pixel."""
    _check_mask_scale(mask)
    return _subject(mask, "the foreground-ratio bucket").flatten(1).mean(dim=1)


def fg_bucket(mask: torch.Tensor) -> str | list[str]:
    """The foreground-ratio bucket (<5 %, 5–15 %, ≥15 %) of one H x W mask, or a list for a batch (B x H x W
    or B x 1 x H x W), a batch of one too."""
    if mask.ndim not in (2, 3, 4):
        raise ValueError(f"the mask must be H×W, B×H×W or B×1×H×W, got {tuple(mask.shape)}")
    names = _buckets(mask if mask.ndim == 4 else mask[:, None] if mask.ndim == 3 else mask[None, None])
    return names[0] if mask.ndim == 2 else names


def _buckets(masks: torch.Tensor) -> list[str]:
    """:func:`fg_bucket` of each B×1×H×W mask."""
    return [BUCKETS[0] if r < 0.05 else BUCKETS[1] if r < 0.15 else BUCKETS[2] for r in fg_ratio(masks).tolist()]


def blend(pred: torch.Tensor, composite: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``pred`` inside the mask and ``composite`` outside it (B×3×H×W, B×1×H×W mask in 0..1 or bool), as the
    official evaluation blends a prediction before it is scored."""
    _check(pred, composite)
    _check_mask(mask, pred)
    mask = mask.to(pred.dtype) if mask.dtype == torch.bool else mask
    return pred * mask + composite * (1 - mask)


def all_metrics(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """:func:`mse`, :func:`fmse`, :func:`psnr` and :func:`fpsnr` of an already blended ``pred``, as a dict from
    ``"MSE"``, ``"fMSE"``, ``"PSNR"``, ``"fPSNR"`` to B tensors."""
    return {"MSE": mse(pred, gt), "fMSE": fmse(pred, gt, mask), "PSNR": psnr(pred, gt), "fPSNR": fpsnr(pred, gt, mask)}


THIN_SAMPLES = 1024  # under this many subject pixels on a grid, whether it caught its share is checked


def rms_change(before: torch.Tensor, after: torch.Tensor, mask: torch.Tensor, peak: float = 1.0,
               mask_peak: float = 1.0, max_pixels: int = 1 << 18) -> tuple[float, float]:
    """How much ``after`` differs from ``before`` (H×W×C pixels, ``peak`` = full intensity; their first three
    channels) over the subject, weighed by the H×W ``mask`` (``mask_peak`` = fully subject), and over the
    background, where the mask holds no more than a trace of the subject (:func:`~phnet.imageio.masks.trace_bar`:
    1/64 of its own strongest value, and at least 1.5/255 of full: a soft edge is the subject's, and a faint mask's
    pixels counted as background reported a change where none was; a floor of 1/255 from a matting model is
    background, beside a weak subject too): two RMS values in 0–255 units. A report's figure, read on ``after``'s
    device on a grid of at most ``max_pixels`` (every k-th row and column of a larger picture): a few milliseconds
    and small copies, whatever the picture's size. A thin subject the grid would miss (a wire, a strand of hair
    across the picture) is read on its own pixels."""
    step = max(1, math.ceil(math.sqrt(mask.numel() / max_pixels)))
    grid = before[::step, ::step], after[::step, ::step], mask[::step, ::step]
    (error, w), (outside_error, outside_w), caught = _changes(*grid, mask_peak)
    if _missed(mask, step, caught):
        at = _subject_pixels(mask, max_pixels)
        b, a, m = (t[at[0].to(t.device), at[1].to(t.device)][None] for t in (before, after, mask))
        (error, w), _, _ = _changes(b, a, m, mask_peak)
    scale = 255 / peak

    def rms(e: float, n: float) -> float:
        return math.sqrt(e / (3 * n)) * scale if n > 0 else 0.0

    return rms(error, w), rms(outside_error, outside_w)


def _changes(before: torch.Tensor, after: torch.Tensor, mask: torch.Tensor, mask_peak: float
             ) -> tuple[tuple[float, float], tuple[float, float], float]:
    """((squared error weighed by the mask, the weights' sum), (the same outside the subject), subject pixels),
    read back together."""
    err = (wide(after[..., :3]) - wide(before[..., :3].to(after.device))).square_()
    weight = wide(mask[..., None].to(after.device)) / mask_peak
    outside = wide(weight <= trace_bar(weight.max()))
    # (a sum over 3 channels is slow)
    read = torch.stack([(err * weight).sum(), weight.sum(), (err * outside).sum(), outside.sum(),
                        (weight > 0).sum().to(err.dtype)]).tolist()
    return (read[0], read[1]), (read[2], read[3]), read[4]


def _missed(mask: torch.Tensor, step: int, caught: float) -> bool:
    """Whether a grid of every ``step``-th row and column, which caught ``caught`` pixels of the H×W ``mask``'s
    subject, missed most of its share: a subject thinner than the grid (a wire, a strand of hair)."""
    return step > 1 and caught < THIN_SAMPLES and caught * step * step < 0.5 * float((mask > 0).sum())


def _subject_pixels(mask: torch.Tensor, max_pixels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and columns of the H×W ``mask``'s subject pixels: at most ``max_pixels`` of them, evenly spread."""
    rows, cols = (mask > 0).nonzero(as_tuple=True)
    step = max(1, math.ceil(len(rows) / max_pixels))
    return rows[::step], cols[::step]


def blend_weight(masks: torch.Tensor, mask_peak: float = 1.0, max_pixels: int = 1 << 18) -> list[float]:
    """How much of a change each soft B×H×W mask (``mask_peak`` = fully subject) lets through, as RMS over its
    subject: sqrt(Σw³ / Σw) for the weights w = mask / ``mask_peak``. 1 for a hard mask, 0.3 for one of 0.3
    everywhere (1 for an empty one); read on a grid like :func:`rms_change`, in one read from the device (a thin
    subject the grid misses, on its own pixels). A change c blended in by w has RMS c × this (for c even over the
    subject)."""
    step = max(1, math.ceil(math.sqrt(masks[0].numel() / max_pixels)))
    weight = wide(masks[:, ::step, ::step]) / mask_peak
    covered = weight.sum(dim=(1, 2))
    cubes = weight.pow(3).sum(dim=(1, 2))
    caught = (weight > 0).flatten(1).sum(1).to(covered.dtype)
    read = torch.stack([covered, cubes, caught], 1).tolist()
    found = []
    for i, (w, w3, n) in enumerate(read):
        if _missed(masks[i], step, n):
            rows, cols = _subject_pixels(masks[i], max_pixels)
            own = wide(masks[i][rows, cols]) / mask_peak
            w, w3 = float(own.sum()), float(own.pow(3).sum())
        found.append(math.sqrt(w3 / w) if w > 0 else 1.0)
    return found


class MetricTracker:
    """Averages per-image metrics overall, per group (e.g. subset) and per fg-ratio bucket.

    ``update(pred, gt, mask, composite=None, group=None)``: ``pred`` is already blended; with
    ``composite`` the do-nothing baseline is tracked alongside under the key ``"composite"``.
    """

    def __init__(self) -> None:
        self._sums: dict[tuple[str, str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._counts: dict[tuple[str, str, str], int] = defaultdict(int)

    def _add(self, method: str, values: dict[str, torch.Tensor], groups: list[str], buckets: list[str]) -> None:
        for i, (group, bucket) in enumerate(zip(groups, buckets)):
            for key in {(method, "all", "all"), (method, group, "all"), (method, "all", bucket)}:
                self._counts[key] += 1
                for name, v in values.items():
                    self._sums[key][name] += float(v[i])

    def update(self, pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, composite: torch.Tensor | None = None,
               group: str | list[str] | None = None) -> dict[str, torch.Tensor]:
        """Add a batch's metrics (``pred``, ``gt``, ``composite`` B×3×H×W, ``mask`` B×1×H×W) under ``group``, one
        name for the batch or one per picture; returns that batch's :func:`all_metrics`."""
        n = pred.shape[0]
        groups = [group] * n if isinstance(group, str) or group is None else list(group)
        groups = [g or "all" for g in groups]
        if len(groups) != n:
            raise ValueError(f"got {len(groups)} group names for a batch of {n} pictures: give one per picture, "
                             "or one name for all")
        _check(pred, gt)
        _check_mask(mask, pred)
        values = all_metrics(pred, gt, mask)
        buckets = _buckets(mask)  # (B×1×H×W, checked)
        self._add("model", values, groups, buckets)
        if composite is not None:
            self._add("composite", all_metrics(composite, gt, mask), groups, buckets)
        return values

    def summary(self) -> dict[str, dict[str, Any]]:
        """{method: {"all": {metric: mean, "count": n}, "groups": {...}, "buckets": {...}}}"""
        out: dict[str, dict[str, Any]] = {}
        for (method, group, bucket), count in sorted(self._counts.items()):
            means = {k: v / count for k, v in self._sums[(method, group, bucket)].items()}
            means["count"] = count
            entry = out.setdefault(method, {"all": {}, "groups": {}, "buckets": {}})
            if group == "all" and bucket == "all":
                entry["all"] = means
            elif bucket == "all":
                entry["groups"][group] = means
            else:
                entry["buckets"][bucket] = means
        return out

    def to_json(self) -> str:
        """:meth:`summary` as indented JSON text."""
        return json.dumps(self.summary(), indent=2)

    def to_markdown(self) -> str:
        """:meth:`summary` as a Markdown table: one row per method and split (all, each group, each fg bucket)."""
        s = self.summary()
        rows = ["| method | split | n | MSE | fMSE | PSNR | fPSNR |", "|---|---|---:|---:|---:|---:|---:|"]
        for method, entry in s.items():
            parts = [("all", entry["all"])] + sorted(entry["groups"].items()) + [
                (f"fg {b}", entry["buckets"][b]) for b in BUCKETS if b in entry["buckets"]
            ]
            for name, m in parts:
                if not m:
                    continue
                rows.append(
                    f"| {method} | {name} | {m['count']} | {m['MSE']:.2f} | {m['fMSE']:.2f} | "
                    f"{m['PSNR']:.2f} | {m['fPSNR']:.2f} |"
                )
        return "\n".join(rows) + "\n"
