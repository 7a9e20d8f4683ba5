"""The colour synthesis API (trainer/data/synthesis.py) and the Reinhard baseline."""
from __future__ import annotations


import numpy as np
import pytest

from procedural_portraits import portrait
from trainer.baselines import reinhard_lab
from trainer.colour import lab_to_rgb, rgb_to_lab
from trainer.data.synthesis import TRANSFORMS, SynthesisOptions, sample_strength, synthesize


@pytest.fixture()
def pair():
    img, mask = portrait(np.random.default_rng(0), 40, 40)
    return img / 255.0, (mask > 0).astype(np.float32)


def test_lab_round_trip():
    x = np.random.default_rng(0).random((16, 16, 3))
    assert np.abs(lab_to_rgb(rgb_to_lab(x)) - x).max() < 1e-6


def test_background_is_untouched_and_strength_scales(pair):
    real, mask = pair
    ident = synthesize(real, mask, np.random.default_rng(1), strength=0.0)
    assert np.abs(ident - real).max() < 1e-6
    full = synthesize(real, mask, np.random.default_rng(1), strength=1.0)
    half = synthesize(real, mask, np.random.default_rng(1), strength=0.5)
    assert np.abs(full - real)[mask == 0].max() < 1e-6
    d_full, d_half = np.abs(full - real)[mask > 0].mean(), np.abs(half - real)[mask > 0].mean()
    assert d_full > 0.01 and 0.3 < d_half / d_full < 0.7
    again = synthesize(real, mask, np.random.default_rng(1), strength=1.0)
    assert np.array_equal(full, again)  # seeded: reproducible


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_each_transform_changes_the_subject(pair, name):
    real, mask = pair
    opts = SynthesisOptions(transforms=[name], max_transforms=1)
    comp = synthesize(real, mask, np.random.default_rng(3), strength=1.0, options=opts)
    assert comp.shape == real.shape and comp.dtype == np.float32
    assert 0.0 <= comp.min() and comp.max() <= 1.0
    assert np.abs(comp - real)[mask > 0].mean() > 0.005


def test_transfer_from_reference_moves_statistics(pair):
    real, mask = pair
    ref = np.zeros((8, 8, 3)) + np.array([0.1, 0.2, 0.9])  # strongly blue picture
    opts = SynthesisOptions(transforms=["transfer"], max_transforms=1, reference_probability=1.0)
    comp = synthesize(real, mask, np.random.default_rng(0), reference=ref, strength=1.0, options=opts)
    fg = comp[mask > 0]
    assert fg[:, 2].mean() > fg[:, 0].mean() + 0.3


def test_a_picture_or_mask_on_the_0_255_scale_is_refused(pair):
    """A uint8 photo as PIL or cv2 reads it came back with a white background, and a 0..255 mask as garbage."""
    real, mask = pair
    ref = np.zeros((8, 8, 3)) + 0.5
    for args, name in [((np.round(real * 255).astype(np.uint8), mask, ref), "real"),
                       ((real * 255, mask, ref), "real"), ((real, mask * 255, ref), "mask"),
                       ((real, mask.astype(np.uint8), ref), "mask"), ((real, mask, ref * 255), "reference")]:
        with pytest.raises(ValueError, match=rf"^{name} must be float in \[0, 1\], got .*: divide a uint8 picture by "
                                             "255"):
            synthesize(*args[:2], np.random.default_rng(0), reference=args[2])
    assert synthesize(real, mask > 0, np.random.default_rng(0), reference=ref).shape == real.shape


def test_sample_strength_fractions():
    rng = np.random.default_rng(0)
    opts = SynthesisOptions(identity_fraction=0.1, mild_fraction=0.2, mild_max=0.2)
    s = np.array([sample_strength(rng, opts) for _ in range(4000)])
    assert (s == 0).mean() == pytest.approx(0.1, abs=0.02)
    assert ((s > 0) & (s <= 0.2)).mean() == pytest.approx(0.2, abs=0.03)
    assert (s >= 0.4).mean() == pytest.approx(0.7, abs=0.03)
    for mild_max in (0.01, 0.0):  # under the usual floor of 0.02: numpy's "high - low < 0" stopped the run
        mild = SynthesisOptions(identity_fraction=0.0, mild_fraction=1.0, mild_max=mild_max)
        assert all(0 <= sample_strength(rng, mild) <= mild_max for _ in range(20))
    with pytest.raises(ValueError, match="unknown synthesis transform"):
        SynthesisOptions(transforms=["sepia"])
    # each share on its own (only their sum was checked: 1.5 and -0.6 made every composite its photo)
    for name, value in [("identity_fraction", 1.5), ("mild_fraction", -0.6), ("mild_max", 1.2),
                        ("reference_probability", -0.1), ("photo_recolour", 2.0)]:
        with pytest.raises(ValueError, match=rf"^data\.synthesis\.{name} must be from 0 to 1, got {value}$"):
            SynthesisOptions(**{name: value})
    with pytest.raises(ValueError, match=r"strength_range must be \[low, high\] from 0 to 1, got \[0.4, 1.5\]"):
        SynthesisOptions(strength_range=(0.4, 1.5))
    with pytest.raises(ValueError, match="max_transforms must be at least 1, got 0"):
        SynthesisOptions(max_transforms=0)
    # the device synthesis applied one draw at every repeat, the CPU one a draw each: two recipes
    with pytest.raises(ValueError, match="names exposure, transfer more than once; list each transform once"):
        SynthesisOptions(transforms=["transfer", "exposure", "transfer", "exposure", "curve"])


def test_reinhard_baseline_matches_background_statistics(pair):
    real, mask = pair
    out = reinhard_lab(real, mask)
    lab, m = rgb_to_lab(out), mask > 0
    assert np.allclose(lab[m].mean(0), lab[~m].mean(0), atol=3.0)
    assert np.array_equal(out[~m], real[~m].astype(np.float32))


def test_rounding_just_past_0_or_1_is_taken_and_a_single_strength_is_a_range(pair):
    """A float picture a resize or a colour conversion left a fraction of a level past 0..1 is not on another
    scale; a strength range of one value (every pair at the same strength) is a range."""
    real, mask = pair
    over = real.copy()
    over[0, 0] = [1 + 0.5 / 255, -0.5 / 255, 0.5]
    comp = synthesize(over, mask, np.random.default_rng(0), strength=1.0)
    assert comp.shape == real.shape and comp.min() >= 0 and comp.max() <= 1
    options = SynthesisOptions(strength_range=(0.5, 0.5), identity_fraction=0.0, mild_fraction=0.0)
    assert sample_strength(np.random.default_rng(0), options) == 0.5
