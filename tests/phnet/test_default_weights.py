"""The bundled default weights do no harm on held-out composites, and help where the error is large.

The composites are built here from the shipped example (examples/composite.png, made from
scikit-image's astronaut photo, which the default weights' training set holds out): its
background is an untouched photograph, so a region of it, colour-shifted by a fixed amount,
is a composite whose ground truth is known. Only the repo's own files are needed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from phnet import Harmonizer, metrics

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "phnet" / "assets" / "default"
EXAMPLES = ROOT / "examples"


def _srgb_to_linear(x):
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x):
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


# (name, ellipse centre x/y and radii as fractions of the side, linear RGB gains, gamma)
CASES = [
    ("flag, darker and blue", (0.10, 0.40, 0.12, 0.30), (0.45, 0.55, 0.85), 1.0),
    ("shuttle, warm and bright", (0.80, 0.30, 0.14, 0.28), (1.90, 1.45, 0.95), 1.0),
    ("wall, green and flat", (0.62, 0.12, 0.16, 0.10), (0.80, 1.25, 0.75), 0.7),
]


def _ellipse(side: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    y, x = np.mgrid[0:side, 0:side] / side
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


@pytest.fixture(scope="module")
def harmonizer() -> Harmonizer:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return Harmonizer.from_pretrained(device="cpu")


@pytest.fixture(scope="module")
def held_out():
    photo = np.asarray(Image.open(EXAMPLES / "composite.png").convert("RGB"), dtype=np.float64) / 255.0
    person = np.asarray(Image.open(EXAMPLES / "mask.png").convert("L")) >= 128
    side = photo.shape[0]
    cases = []
    for name, (cx, cy, rx, ry), gains, gamma in CASES:
        region = _ellipse(side, cx, cy, rx, ry) & ~person  # background pixels only: real photo
        shifted = _linear_to_srgb(_srgb_to_linear(photo) * np.array(gains)) ** gamma
        comp = np.where(region[..., None], shifted, photo)
        cases.append((name, photo, region, comp))
    return cases


def _t(a: np.ndarray) -> torch.Tensor:
    a = torch.from_numpy(np.ascontiguousarray(a)).float()
    return a.permute(2, 0, 1)[None] if a.ndim == 3 else a[None, None]


def test_default_weights_are_bundled_and_small():
    assert (DEFAULT / "config.json").is_file() and (DEFAULT / "model.safetensors").is_file()
    assert (DEFAULT / "model.safetensors").stat().st_size <= 20 * 2**20
    h = Harmonizer.from_pretrained(device="cpu")
    assert h.config.output == "residual" and h.config.image_size == 256
    assert h.config.correction_threshold > 0  # calibrated by trainer.calibrate (docs/default-weights.md)


def test_default_weights_beat_the_composite_on_held_out_composites(harmonizer, held_out):
    comp_f, out_f = [], []
    for name, real, region, comp in held_out:
        assert region.mean() > 0.01, name
        real_t, mask_t, comp_t = _t(real), _t(region.astype(np.float64)), _t(comp)
        out_t = harmonizer.harmonize_tensor(comp_t, mask_t)
        # outside the mask the picture is returned untouched
        assert torch.equal(out_t[mask_t.expand_as(out_t) == 0], comp_t[mask_t.expand_as(comp_t) == 0])
        before = float(metrics.fmse(comp_t, real_t, mask_t)[0])
        after = float(metrics.fmse(out_t, real_t, mask_t)[0])
        comp_f.append(before)
        out_f.append(after)
        # first, no harm: never further from the truth than the composite (a correction the threshold
        # judges too small to trust is dropped, so "unchanged" is an allowed answer)
        assert after <= before + 1e-6, f"{name}: fMSE {after:.1f} is above the composite's {before:.1f}"
    # and some help: measured, the dark blue flag 1036 -> 988; the other two are left as they were
    assert min(o / c for o, c in zip(out_f, comp_f)) < 0.98, (out_f, comp_f)


def test_default_weights_leave_an_untouched_region_nearly_alone(harmonizer, held_out):
    _, real, region, _ = held_out[0]
    real_t, mask_t = _t(real), _t(region.astype(np.float64))
    out_t = harmonizer.harmonize_tensor(real_t, mask_t)
    # the change made to a region that needs none, against the error of a shifted one
    shifted = held_out[0][3]
    change = float(metrics.fmse(out_t, real_t, mask_t)[0])
    error = float(metrics.fmse(_t(shifted), real_t, mask_t)[0])
    assert change < 0.25 * error, (change, error)


def test_the_bundled_do_no_harm_rule_is_the_one_the_docs_give():
    """The README and docs/default-weights.md quote the bundled weights' rule (threshold 40.5, a fifth below it, whole
    from 56.5 on): a new calibration must bring its words along."""
    repo = Path(__file__).resolve().parents[2]
    cfg = Harmonizer.from_pretrained(device="cpu").config
    rule = (cfg.correction_threshold, cfg.correction_ramp, cfg.correction_floor)
    assert rule == (40.5, 16.0, 0.2)
    docs = " ".join((repo / "docs" / "default-weights.md").read_text(encoding="utf-8").split())
    assert ("`correction_threshold` 40.5, `correction_ramp` 16, `correction_floor` 0.2" in docs
            and "smaller than 40.5 is applied at a fifth of its size, one above 56.5 whole" in docs)
    readme = " ".join((repo / "README.md").read_text(encoding="utf-8").split())
    assert "their threshold (40.5, RMS on 0–255)" in readme and "(from 56.5 on, after a ramp)" in readme
