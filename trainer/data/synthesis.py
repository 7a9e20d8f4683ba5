"""Synthetic harmonisation pairs: change the subject's colours, keep the background.

The recipe is this project's own, after how FFHQH is described (a real portrait whose person region has
its appearance shifted; its generation code is not published, so the match is unverified): take a real
photo and a mask, apply a random colour/tone change to the whole picture, and paste the changed picture
back inside the mask only. The untouched photo is the ground truth.

Public API (used by the trainer and by other data-set builders)::

    comp = synthesize(real, mask, rng, reference=None, strength=None)

* ``real``: float HxWx3 in [0, 1]; ``mask``: HxW in [0, 1] (binary or soft); integer arrays (a uint8
  picture) and values outside [0, 1] are refused;
* ``rng``: ``numpy.random.Generator`` (seed it per sample for reproducible sets);
* ``reference``: optional float HxWx3 image whose Lab statistics the subject is
  moved towards (the "another image's statistics" transfer); without it the
  transfer targets random statistics;
* ``strength``: 0 gives the identity (comp == real), 1 the full random change;
  ``None`` draws one from ``STRENGTH_RANGE``.

Identity and mild pairs ("do no harm" training) are drawn by
:func:`sample_strength`, which the data sets call before :func:`synthesize`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from trainer.colour import LUMA, lab_to_rgb, linear_to_srgb, masked_stats, rgb_to_lab, srgb_to_linear

STRENGTH_RANGE = (0.4, 1.0)


# --------------------------------------------------------------------------- transforms
# Each transform maps a full float image to a changed one; ``ctx`` carries the
# mask and the optional reference picture.

def stats_transfer(img, rng, ctx):
    """Reinhard-style transfer in Lab: subject mean/std -> reference (or random) statistics."""
    lab = rgb_to_lab(img)
    weight = ctx["mask"] if ctx["mask"].sum() > 0 else np.ones(img.shape[:2])
    mean, std = masked_stats(lab, weight)
    ref = ctx.get("reference")
    if ref is not None:
        t_mean, t_std = masked_stats(rgb_to_lab(ref), np.ones(ref.shape[:2]))
    else:
        t_mean = mean + rng.uniform([-25, -20, -20], [25, 20, 20])
        t_std = std * np.exp(rng.uniform(-0.4, 0.4, size=3))
    # keep the change plausible: never flatten a channel completely
    t_std = np.maximum(t_std, 0.35 * std)
    out = (lab - mean) / np.maximum(std, 1e-3) * t_std + t_mean
    out[..., 0] = np.clip(out[..., 0], 0, 100)
    return lab_to_rgb(out)


def tone_curve(img, rng, ctx):
    """A smooth random monotone curve, shared by the channels or (1 in 3) per channel."""
    xs = np.linspace(0, 1, 6)
    per_channel = rng.random() < 1 / 3
    out = np.empty_like(img)
    curve = None
    for c in range(3):
        if curve is None or per_channel:
            ys = xs + rng.normal(0, 0.08, size=xs.shape)
            ys[0], ys[-1] = rng.uniform(0, 0.08), rng.uniform(0.9, 1.0)
            ys = np.maximum.accumulate(np.clip(ys, 0, 1))
            curve = ys
        out[..., c] = np.interp(img[..., c], xs, curve)
    return out


def white_balance(img, rng, ctx):
    gains = np.exp(rng.normal(0, 0.18, size=3))
    gains /= float(LUMA @ gains)  # keep brightness, change the cast
    return linear_to_srgb(srgb_to_linear(img) * gains)


def exposure(img, rng, ctx):
    ev = rng.uniform(0.35, 1.3) * rng.choice([-1.0, 1.0])
    return linear_to_srgb(srgb_to_linear(img) * 2.0 ** ev)


def gamma(img, rng, ctx):
    g = np.exp(rng.uniform(0.2, 0.6) * rng.choice([-1.0, 1.0]))
    return np.clip(img, 0, 1) ** g


def saturation_hue(img, rng, ctx):
    """Saturation scale around the luma, then a hue rotation in YIQ."""
    sat = np.exp(rng.uniform(-0.7, 0.5))
    y = img @ LUMA
    out = y[..., None] + (img - y[..., None]) * sat
    angle = np.deg2rad(rng.uniform(-35, 35))
    to_yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    rot = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    m = np.linalg.inv(to_yiq) @ rot @ to_yiq
    return out @ m.T


TRANSFORMS: dict[str, Callable] = {
    "transfer": stats_transfer,
    "curve": tone_curve,
    "white_balance": white_balance,
    "exposure": exposure,
    "gamma": gamma,
    "saturation_hue": saturation_hue,
}
# how often each transform is picked (the statistics transfer is the FFHQH-like core)
_DEFAULT_WEIGHTS = {"transfer": 3.0, "curve": 1.0, "white_balance": 1.5, "exposure": 1.5,
                    "gamma": 1.0, "saturation_hue": 1.5}


@dataclass
class SynthesisOptions:
    """Knobs of the synthetic pairs (mirrors the ``[data.synthesis]`` config table)."""
    transforms: Sequence[str] = tuple(TRANSFORMS)
    max_transforms: int = 3
    strength_range: tuple[float, float] = STRENGTH_RANGE
    identity_fraction: float = 0.1   # pairs with strength 0 (composite == real)
    mild_fraction: float = 0.2       # pairs with strength in (0, mild_max]
    mild_max: float = 0.2
    reference_probability: float = 0.7  # transfer from another photo vs. random statistics
    photo_recolour: float = 0.0  # training only: chance of recolouring the whole photo first
    on_device: bool = False  # training only: make the composites on the training device (synthesis_torch.py)

    def __post_init__(self):
        unknown = [t for t in self.transforms if t not in TRANSFORMS]
        if unknown:
            raise ValueError(f"unknown synthesis transform(s) {unknown}; choose from {sorted(TRANSFORMS)}")
        if not self.transforms:
            raise ValueError("data.synthesis.transforms is empty")
        repeated = sorted({t for t in self.transforms if list(self.transforms).count(t) > 1})
        if repeated:
            raise ValueError(f"data.synthesis.transforms names {', '.join(repeated)} more than once; list each "
                             "transform once (max_transforms says how many are applied together)")
        for name in ("identity_fraction", "mild_fraction", "mild_max", "reference_probability", "photo_recolour"):
            if not 0 <= getattr(self, name) <= 1:  # a negative share made every composite its photo, say
                raise ValueError(f"data.synthesis.{name} must be from 0 to 1, got {getattr(self, name)}")
        if len(self.strength_range) != 2 or not 0 <= self.strength_range[0] <= self.strength_range[1] <= 1:
            raise ValueError(f"data.synthesis.strength_range must be [low, high] from 0 to 1, got "
                             f"{list(self.strength_range)}")
        if self.max_transforms < 1:
            raise ValueError(f"data.synthesis.max_transforms must be at least 1, got {self.max_transforms}")
        if not 0 <= self.identity_fraction + self.mild_fraction <= 1:
            raise ValueError("identity_fraction + mild_fraction must be within [0, 1]")
        self.transforms = tuple(self.transforms)
        self.strength_range = tuple(float(v) for v in self.strength_range)


def sample_strength(rng: np.random.Generator, options: SynthesisOptions | None = None) -> float:
    """Draw a strength: identity / mild / ordinary pairs in the configured proportions."""
    o = options or SynthesisOptions()
    u = rng.random()
    if u < o.identity_fraction:
        return 0.0
    if u < o.identity_fraction + o.mild_fraction:
        return float(rng.uniform(min(0.02, o.mild_max), o.mild_max))  # a mild_max under 0.02 is its own floor
    return float(rng.uniform(*o.strength_range))


def recolour_photo(real: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A mild random colour grade of the whole photo (white balance, exposure, gamma, saturation).

    Applied to subject and background alike before the subject is perturbed, so the ground truth
    stays harmonious while the network cannot learn a training photo's absolute colours: what it
    can learn is the subject's colour *relative to its scene*.
    """
    x = np.asarray(real, dtype=np.float64)
    gains = np.exp(rng.normal(0.0, 0.08, size=3))
    x = x * gains * np.exp(rng.normal(0.0, 0.12))
    x = np.clip(x, 0.0, 1.0) ** np.exp(rng.normal(0.0, 0.1))
    grey = x.mean(axis=-1, keepdims=True)
    x = grey + np.exp(rng.normal(0.0, 0.15)) * (x - grey)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def choose_transforms(rng: np.random.Generator, options: SynthesisOptions) -> tuple[list[str], np.ndarray]:
    """(the configured transform names, the indices of the 1..max_transforms drawn for one sample)."""
    names = list(options.transforms)
    weights = np.array([_DEFAULT_WEIGHTS.get(n, 1.0) for n in names])
    k = int(rng.integers(1, min(options.max_transforms, len(names)) + 1))
    return names, rng.choice(len(names), size=k, replace=False, p=weights / weights.sum())


_SLACK = 1 / 255  # rounding past 0 or 1, not values on another scale


def _unit(x, name: str) -> np.ndarray:
    """``x`` as float64, refused unless it is a float array in [0, 1] (a uint8 picture as PIL or cv2 read it,
    whose background would come back white, or a float one holding 0..255 values)."""
    x = np.asarray(x)
    low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if x.dtype.kind in "iu" or low < -_SLACK or high > 1 + _SLACK:
        raise ValueError(f"{name} must be float in [0, 1], got {x.dtype} in [{low:g}, {high:g}]: divide a uint8 "
                         "picture by 255")
    return x.astype(np.float64, copy=False)


def synthesize(real: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
               reference: np.ndarray | None = None, strength: float | None = None,
               *, options: SynthesisOptions | None = None) -> np.ndarray:
    """Return a composite: ``real`` outside the mask, colour-shifted ``real`` inside it."""
    o = options or SynthesisOptions()
    real = _unit(real, "real")
    if real.ndim != 3 or real.shape[2] != 3:
        raise ValueError(f"real must be HxWx3, got shape {real.shape}")
    mask = _unit(mask, "mask")
    if reference is not None:
        reference = _unit(reference, "reference")
    if mask.ndim == 3:
        mask = mask[..., 0]
    if mask.shape != real.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image {real.shape[:2]}")
    if strength is None:
        strength = float(rng.uniform(*o.strength_range))
    # draw the transform parameters even for strength 0 so a seed gives the same
    # random stream whatever the strength
    names, chosen = choose_transforms(rng, o)
    ctx = {"mask": mask, "reference": None}
    if reference is not None and rng.random() < o.reference_probability:
        ctx["reference"] = reference
    changed = real
    for i in sorted(chosen):  # fixed order: colour transfer first, tone tweaks after
        changed = np.clip(TRANSFORMS[names[i]](changed, rng, ctx), 0.0, 1.0)
    if strength <= 0:
        return real.astype(np.float32)
    fg = real + float(strength) * (changed - real)
    comp = mask[..., None] * fg + (1 - mask[..., None]) * real
    return np.clip(comp, 0.0, 1.0).astype(np.float32)
