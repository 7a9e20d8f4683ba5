"""Composites made in batches on the device (trainer/data/synthesis_torch.py) against the numpy reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from procedural_portraits import portrait
from training_runs import read_log, tiny_cfg
from trainer import colour
from trainer.data import build_dataset, collate
from trainer.data.synthesis import TRANSFORMS, SynthesisOptions, recolour_photo, sample_strength, synthesize
from trainer.data.synthesis_torch import (APPLY, DRAWS, as_params, draw_batch, draw_sample, stack_params,
                                          synthesize_batch)

N_PHOTOS = 8


@pytest.fixture(scope="module")
def pool():
    """(real, mask, reference) numpy pictures: 8 procedural portraits at 32x32 and a 16x16 reference each."""
    out = []
    for i in range(N_PHOTOS):
        img, mask = portrait(np.random.default_rng(i), 32, 32)
        ref, _ = portrait(np.random.default_rng(100 + i), 16, 16)
        out.append(((img / 255.0).astype(np.float32), (mask > 0).astype(np.float32), (ref / 255.0).astype(np.float32)))
    return out


def as_batch(pictures, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` rows cycling through the pool: Bx3xHxW photos and Bx1xHxW masks."""
    real = torch.stack([torch.from_numpy(pictures[i % len(pictures)][0]).permute(2, 0, 1) for i in range(n)])
    mask = torch.stack([torch.from_numpy(pictures[i % len(pictures)][1])[None] for i in range(n)])
    return real, mask


def to_hwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).numpy()


# --------------------------------------------------------------------------- (a) identity and background

def test_strength_zero_is_the_real_photo_and_the_background_never_changes(pool):
    opts = SynthesisOptions(identity_fraction=0.3, photo_recolour=0.5)
    real, mask = as_batch(pool, 64)
    params = draw_batch(np.random.default_rng(0), 64, opts, reference=pool[0][2])
    params["strength"][::4] = 0.0  # and every fourth row is an identity pair whatever its draw
    comp, truth = synthesize_batch(real, mask, params, opts)
    identity = params["strength"] == 0
    assert identity.sum() >= 16 and (params["recolour"] > 0).any() and (params["recolour"] == 0).any()
    assert torch.equal(comp[identity], truth[identity])
    kept = params["recolour"] == 0
    assert torch.equal(truth[kept], real[kept])  # only recoloured photos change their ground truth
    outside = (mask == 0).expand_as(comp)
    assert torch.equal(comp[outside], truth[outside])
    changed = ~identity
    assert (comp[changed] - truth[changed]).abs().amax((1, 2, 3)).min() > 0
    assert comp.dtype == torch.float32 and 0 <= comp.min() and comp.max() <= 1


# --------------------------------------------------------------------------- (b) same distribution

def composite_statistics(comps: np.ndarray, reals: np.ndarray, masks: np.ndarray) -> dict:
    """Per sample: identity pair?, mean absolute change inside the mask, mean Lab shift (and its size) inside it."""
    inside = masks[..., None] > 0
    change = np.abs(comps - reals)
    mae = (change * inside).sum((1, 2, 3)) / (3 * inside.sum((1, 2, 3)))
    lab_shift = np.stack([((colour.rgb_to_lab(c) - colour.rgb_to_lab(r)) * inside[i]).sum((0, 1)) / inside[i].sum()
                          for i, (c, r) in enumerate(zip(comps, reals))])
    return {"identity": change.reshape(len(comps), -1).max(1) == 0, "mae": mae, "lab_shift": lab_shift,
            "lab_shift_size": np.abs(lab_shift)}


def test_device_and_numpy_paths_agree_in_distribution(pool):
    """400 composites each way from the same photos, with independent random streams.

    Tolerances are sampling noise: two independent estimates of a mean differ by more than 4 of their
    standard errors with a chance of about 6e-5, an identity fraction (p = 0.1, n = 400) has a standard
    error of 0.015 (0.021 for the difference: 0.07 is over 3 of them), and the standard deviation of 400
    skewed values is known to some 10 % (0.75 to 1.33 leaves 3 of those).
    """
    n, opts = 400, SynthesisOptions()
    reals = np.stack([pool[i % N_PHOTOS][0] for i in range(n)])
    masks = np.stack([pool[i % N_PHOTOS][1] for i in range(n)])
    cpu = []
    for i in range(n):
        rng = np.random.default_rng([1, i])
        cpu.append(synthesize(reals[i], masks[i], rng, reference=pool[(i + 1) % N_PHOTOS][2],
                              strength=sample_strength(rng, opts), options=opts))
    rng = np.random.default_rng(2)  # another stream: the same distribution is claimed, not the same draws
    params = stack_params([draw_sample(rng, opts, lambda _, i=i: pool[(i + 1) % N_PHOTOS][2]) for i in range(n)])
    real_t, mask_t = as_batch(pool, n)
    dev, _ = synthesize_batch(real_t, mask_t, params, opts)
    a = composite_statistics(np.stack(cpu), reals, masks)
    b = composite_statistics(dev.permute(0, 2, 3, 1).numpy(), reals, masks)

    assert a["identity"].mean() == pytest.approx(0.1, abs=0.05)
    assert abs(a["identity"].mean() - b["identity"].mean()) < 0.07
    for key in ("mae", "lab_shift", "lab_shift_size"):
        se = np.sqrt(a[key].var(0) / n + b[key].var(0) / n)
        assert np.all(np.abs(a[key].mean(0) - b[key].mean(0)) < 4 * se), key
    ratio = b["mae"].std() / a["mae"].std()
    assert 0.75 < ratio < 1.33
    assert a["mae"].mean() > 0.02  # the statistics compare real changes, not two near-identities


def test_same_draws_make_the_same_composites_as_numpy(pool):
    """Seeded alike, a sample's device composite is synthesize()'s (recolouring and reference included)."""
    opts = SynthesisOptions(photo_recolour=0.5)
    rows, expected = [], []
    for i in range(48):
        real, mask, _ = pool[i % N_PHOTOS]
        ref = pool[(i + 3) % N_PHOTOS][2]
        rng = np.random.default_rng([7, i])
        strength = sample_strength(rng, opts)
        if rng.random() < opts.photo_recolour:
            real = recolour_photo(real, rng)
        expected.append(synthesize(real, mask, rng, reference=ref, strength=strength, options=opts))
        rows.append(draw_sample(np.random.default_rng([7, i]), opts, lambda _, ref=ref: ref))
    real_t, mask_t = as_batch(pool, 48)
    comp, _ = synthesize_batch(real_t, mask_t, stack_params(rows), opts)
    diff = np.abs(comp.permute(0, 2, 3, 1).numpy() - np.stack(expected))
    assert diff.max() < 1e-4 and diff.mean() < 1e-6


# --------------------------------------------------------------------------- (c) each transform alone

@pytest.mark.parametrize("name,with_reference", [(n, False) for n in TRANSFORMS] + [("transfer", True)])
def test_each_transform_matches_numpy_with_the_same_parameters(pool, name, with_reference):
    rows, expected = [], []
    for i in range(4):
        real, mask, ref = pool[i]
        ref = ref if with_reference else None
        a, b = np.random.default_rng(i), np.random.default_rng(i)
        out = TRANSFORMS[name](real.astype(np.float64), a, {"mask": mask.astype(np.float64), "reference": ref})
        expected.append(np.clip(out, 0, 1))
        rows.append(as_params(DRAWS[name](b, ref)))
        assert a.random() == b.random()  # the draw used as many numbers: later transforms get the same ones too
    real_t, mask_t = as_batch(pool[:4], 4)
    got = APPLY[name](real_t, mask_t, stack_params(rows)).clamp(0, 1)
    assert np.abs(got.permute(0, 2, 3, 1).numpy() - np.stack(expected)).max() < 1e-4


# --------------------------------------------------------------------------- the data set and the loop

@pytest.fixture(scope="module")
def folder_data(photos):
    img_dir, mask_dir = photos
    return {"root": str(img_dir), "mask_dir": str(mask_dir), "image_size": 32, "val_fraction": 0.25,
            "crop_scale": [0.7, 1.0], "hflip": 0.5}


def test_on_device_training_samples_carry_parameters_and_validation_stays_on_the_cpu(folder_data):
    syn = {"photo_recolour": 0.5}
    cpu = build_dataset({**folder_data, "synthesis": syn}, "train")
    dev = build_dataset({**folder_data, "synthesis": {**syn, "on_device": True}}, "train")
    keys = [(i, epoch) for epoch in (0, 1) for i in range(len(cpu))]
    a = collate([cpu[k] for k in keys])
    b = collate([dev[k] for k in keys])
    assert "comp" not in b and set(b["synthesis"]) >= {"strength", "chosen", "curve"}
    assert b["synthesis"]["strength"].shape == (len(keys),) and b["synthesis"]["curve"].shape == (len(keys), 3, 6)
    comp, real = synthesize_batch(b["real"], b["mask"], b["synthesis"], dev.synthesis)
    assert torch.allclose(real, a["real"], atol=1e-5)  # the crops, flips and recolouring of the CPU path
    assert (comp - a["comp"]).abs().max() < 1e-4  # and its composites, up to float32 rounding
    val = build_dataset({**folder_data, "synthesis": {"on_device": True}}, "val")
    assert torch.equal(val[0]["comp"], val[0]["comp"]) and "synthesis" not in val[0]


def test_on_device_is_a_checked_config_value(folder_data):
    from trainer.config import load_config

    assert load_config("tiny_cpu")["data"]["synthesis"]["on_device"] is False
    assert load_config("tiny_cpu", ["data.synthesis.on_device=true"])["data"]["synthesis"]["on_device"] is True
    with pytest.raises(ValueError, match="data.synthesis.on_device must be true or false"):
        load_config("tiny_cpu", ["data.synthesis.on_device=1"])


def test_tiny_training_with_composites_made_on_the_device(folder_data, tmp_path):
    """Exposure changes alone, at full strength: a change the tiny model learns in a few dozen steps. The
    validation composites are still made by the data set with numpy, so the weights trained on device-made
    composites are scored on CPU-made ones."""
    from trainer.fit import train

    out = tmp_path / "run"
    cfg = tiny_cfg(folder_data["root"], out, steps=50, val_every=0, ckpt_every=0, warmup_steps=5, log_every=5,
                   val_batch_size=8)
    cfg["data"].update(mask_dir=folder_data["mask_dir"], val_fraction=0.25)
    cfg["data"]["synthesis"].update(on_device=True, transforms=["exposure"], identity_fraction=0.0,
                                    mild_fraction=0.0, strength_range=[1.0, 1.0])
    train(cfg, progress=False)
    log = read_log(out)
    losses = [r["loss"] for r in log if r["type"] == "train"]
    assert len(losses) == 10 and np.mean(losses[-3:]) < 0.9 * losses[0]
    val = [r for r in log if r["type"] == "val"]
    assert val[-1]["fmse"] < 0.5 * val[-1]["composite_fmse"]


def test_a_photo_a_fraction_of_a_level_below_0_gets_the_gamma_numpy_gives_it(pool):
    """synthesize() takes values rounding left just past 0..1 and clips them before its gamma; a negative value
    to a fractional power on the device is NaN."""
    from trainer.data.synthesis_torch import draw_params

    opts = SynthesisOptions(transforms=("gamma",), max_transforms=1)
    real, mask, _ = pool[0]
    real = real.copy()
    real[mask > 0] = -0.5 / 255  # the whole subject
    expected = synthesize(real, mask, np.random.default_rng(3), strength=1.0, options=opts)
    params = stack_params([draw_params(np.random.default_rng(3), opts, strength=1.0)])
    comp, _ = synthesize_batch(torch.from_numpy(real).permute(2, 0, 1)[None], torch.from_numpy(mask)[None, None],
                               params, opts)
    assert torch.isfinite(comp).all()
    assert np.abs(comp[0].permute(1, 2, 0).numpy() - expected).max() < 1e-5
