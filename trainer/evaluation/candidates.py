"""What an evaluation compares: the weights given with ``--weights`` (labelled or not) and the baselines beside
them, each run on a batch the way the resolution asks."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from trainer.baselines import mkl_batch, reinhard_batch
from trainer.evaluation.grid import grid_label


BASELINES = {"reinhard": reinhard_batch, "mkl": mkl_batch}


def parse_weights(items) -> dict[str, str]:
    """``["path"]`` -> {"phnet": path}; ``["new=path", "old=path2"]`` -> labelled models, in order."""
    if isinstance(items, str):
        items = [items]
    out: dict[str, str] = {}
    for item in items or []:
        label, sep, path = str(item).partition("=")
        if not sep or not label or "/" in label or os.path.exists(os.path.expanduser(str(item))):  # lr=3e-4/best
            label, path = ("phnet" if not out else f"phnet{len(out) + 1}"), str(item)
        # the grid's and the tables' other columns and rows, and the models named so far, as they are shown
        taken = {"composite", "mask", "real", *BASELINES, *(grid_label(known).lower() for known in out)}
        if label.lower() in taken or grid_label(label).lower() in taken:
            raise ValueError(f"--weights label {label!r} is used twice, or names a baseline or a column of the "
                             "grid (composite, mask, Reinhard, MKL, real, PHNet for the first unlabelled model); "
                             "pick another")
        out[label] = path
    return out


@dataclass
class Candidates:
    """The weights under evaluation, each run the way the resolution asks: the network at the sample's
    size (then blended), or the whole Harmonizer at native resolution."""

    models: dict
    harmonizers: dict
    native: bool
    working_size: int | None

    def run(self, label: str, img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        from phnet import metrics

        if self.native:
            return self.harmonizers[label].harmonize_tensor(img, mask, working_size=self.working_size)
        return metrics.blend(self.models[label](img, mask).float().clamp(0, 1), img, mask)

    def outputs(self, img: torch.Tensor, mask: torch.Tensor, boxes=None) -> dict[str, torch.Tensor]:
        """The baselines' and every model's result on ``img``. ``boxes``: each picture's (top, left, height,
        width) inside its padded square (resize "pad"): the baselines match colours to the picture's own
        background there, not to the padding's black."""
        outs = {name: _within(fn, img, mask, boxes) for name, fn in BASELINES.items()}
        return {**outs, **{label: self.run(label, img, mask) for label in self.models}}


def _within(fn, img: torch.Tensor, mask: torch.Tensor, boxes) -> torch.Tensor:
    """``fn(img, mask)``, or with ``boxes`` each picture's box only (the padding around it as it was)."""
    if boxes is None:
        return fn(img, mask)
    out = img.clone()
    for i, (top, left, h, w) in enumerate(boxes):
        region = (slice(i, i + 1), slice(None), slice(top, top + h), slice(left, left + w))
        out[region] = fn(img[region], mask[region])
    return out


def load_candidates(weights, device, native: bool, working_size: int | None) -> Candidates:
    from phnet import Harmonizer
    from phnet.weights import load_model

    models = {label: load_model(path).to(device).eval() for label, path in parse_weights(weights).items()}
    harmonizers = {label: Harmonizer(m, device=device, dtype="fp32") for label, m in models.items()}
    return Candidates(models, harmonizers, native, working_size)
