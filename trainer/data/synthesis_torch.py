"""Synthetic composites made in batches with torch, on the training device (``[data.synthesis] on_device``).

The recipe is the one of synthesis.py, which stays the reference and the CPU default: the same
transforms, in the same order, pasted inside the mask with the same strength. The work is split in two:

* ``draw_sample(rng, options, reference_for)`` (numpy, one sample) draws what the data set's CPU path draws
  (``sample_strength()``, ``recolour_photo()``, then ``synthesize()``), in the same order and from the same
  generator, and returns it as a dict of small float tensors (``draw_params`` is the ``synthesize()`` part);
* ``synthesize_batch(real, mask, params, options)`` (torch, B×3×H×W in [0, 1] and B×1×H×W masks, any
  device) applies them to the whole batch at once and returns ``(comp, real)``.

Why the parameters are drawn with numpy on the CPU, per sample, by the data set: they stay a function of
the sample's own generator (seed, epoch, index), like every other random choice of the data set, so a
resumed run and a run on another number of GPUs see the same composites, and a sample's composite is the
one ``synthesize()`` makes from it, up to float32 rounding. They are a few dozen numbers drawn in tens of
microseconds in the data workers; the pixels are what cost, and those are all done here, in batches.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from trainer import colour as np_colour
from trainer.colour import LUMA
from trainer.data.synthesis import TRANSFORMS, SynthesisOptions, choose_transforms, sample_strength

TRANSFORM_NAMES = tuple(TRANSFORMS)  # the columns of ``params["chosen"]``
_CURVE_XS = np.linspace(0, 1, 6)
_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])

# what a transform nobody chose holds (the rows that did not choose it are never changed by it)
_NEUTRAL = {
    "strength": np.float64(0.0),
    "recolour": np.float64(0.0), "recolour_gain": np.ones(3), "recolour_gamma": np.float64(1.0),
    "recolour_saturation": np.float64(1.0),
    "chosen": np.zeros(len(TRANSFORM_NAMES)),
    "use_reference": np.float64(0.0), "reference_mean": np.zeros(3), "reference_std": np.ones(3),
    "transfer_offset": np.zeros(3), "transfer_scale": np.ones(3),
    "curve": np.tile(_CURVE_XS, (3, 1)),
    "white_balance": np.ones(3),
    "exposure": np.float64(1.0),
    "gamma": np.float64(1.0),
    "colour_matrix": np.eye(3),
}


# --------------------------------------------------------------------------- drawing (numpy, one sample)
# Each draw makes the very rng calls of its numpy transform, in its order: seeded alike, both use the same
# parameters (tests/trainer/test_synthesis_torch.py holds them to it). ``reference`` is the picture the
# sample's statistics transfer targets, or None.

def draw_transfer(rng: np.random.Generator, reference: np.ndarray | None) -> dict:
    if reference is not None:  # the target is the reference's statistics: nothing to draw
        mean, std = np_colour.masked_stats(np_colour.rgb_to_lab(reference), np.ones(reference.shape[:2]))
        return {"use_reference": np.float64(1.0), "reference_mean": mean, "reference_std": std}
    return {"transfer_offset": rng.uniform([-25, -20, -20], [25, 20, 20]),
            "transfer_scale": np.exp(rng.uniform(-0.4, 0.4, size=3))}


def draw_curve(rng: np.random.Generator, reference: np.ndarray | None) -> dict:
    per_channel = rng.random() < 1 / 3
    curves: list[np.ndarray] = []
    for _ in range(3):
        if not curves or per_channel:
            ys = _CURVE_XS + rng.normal(0, 0.08, size=_CURVE_XS.shape)
            ys[0], ys[-1] = rng.uniform(0, 0.08), rng.uniform(0.9, 1.0)
            curves.append(np.maximum.accumulate(np.clip(ys, 0, 1)))
        else:
            curves.append(curves[-1])
    return {"curve": np.stack(curves)}


def draw_white_balance(rng: np.random.Generator, reference: np.ndarray | None) -> dict:
    gains = np.exp(rng.normal(0, 0.18, size=3))
    return {"white_balance": gains / float(LUMA @ gains)}


def draw_exposure(rng: np.random.Generator, reference: np.ndarray | None) -> dict:
    ev = rng.uniform(0.35, 1.3) * rng.choice([-1.0, 1.0])
    return {"exposure": np.float64(2.0 ** ev)}


def draw_gamma(rng: np.random.Generator, reference: np.ndarray | None) -> dict:
    return {"gamma": np.exp(rng.uniform(0.2, 0.6) * rng.choice([-1.0, 1.0]))}


def draw_saturation_hue(rng: np.random.Generator, reference: np.ndarray | None) -> dict:
    """One 3x3 matrix: the saturation scale around the luma, then the YIQ hue rotation."""
    sat = np.exp(rng.uniform(-0.7, 0.5))
    angle = np.deg2rad(rng.uniform(-35, 35))
    saturate = sat * np.eye(3) + (1 - sat) * np.outer(np.ones(3), LUMA)
    rot = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    return {"colour_matrix": np.linalg.inv(_TO_YIQ) @ rot @ _TO_YIQ @ saturate}


DRAWS = {"transfer": draw_transfer, "curve": draw_curve, "white_balance": draw_white_balance,
         "exposure": draw_exposure, "gamma": draw_gamma, "saturation_hue": draw_saturation_hue}


def draw_recolour(rng: np.random.Generator) -> dict:
    """The draws of ``recolour_photo()``, in its order (the caller has drawn whether to recolour)."""
    gains = np.exp(rng.normal(0.0, 0.08, size=3))
    brightness = np.exp(rng.normal(0.0, 0.12))
    return {"recolour": np.float64(1.0), "recolour_gain": gains * brightness,
            "recolour_gamma": np.exp(rng.normal(0.0, 0.1)), "recolour_saturation": np.exp(rng.normal(0.0, 0.15))}


def draw_params(rng: np.random.Generator, options: SynthesisOptions | None = None, *,
                reference: np.ndarray | None = None, strength: float | None = None,
                recolour: dict | None = None) -> dict[str, torch.Tensor]:
    """One sample's parameters, drawn as ``synthesize(real, mask, rng, reference, strength)`` draws them.

    ``recolour`` is what :func:`draw_recolour` drew for this sample, if the photo is recoloured first.
    """
    o = options or SynthesisOptions()
    if strength is None:
        strength = float(rng.uniform(*o.strength_range))
    names, chosen = choose_transforms(rng, o)
    if reference is not None and not rng.random() < o.reference_probability:
        reference = None
    p = dict(recolour or {}, strength=strength, chosen=np.zeros(len(TRANSFORM_NAMES)))
    for i in sorted(chosen):
        p["chosen"][TRANSFORM_NAMES.index(names[i])] = 1.0
        p.update(DRAWS[names[i]](rng, reference))
    return as_params(p)


def as_params(drawn: dict) -> dict[str, torch.Tensor]:
    """One sample's full parameter set: ``drawn`` over the neutral values, as float32 tensors."""
    return {key: torch.as_tensor(np.asarray(v, dtype=np.float32)) for key, v in {**_NEUTRAL, **drawn}.items()}


def draw_sample(rng: np.random.Generator, options: SynthesisOptions, reference_for=None) -> dict[str, torch.Tensor]:
    """A training sample's parameters, drawn in the order of ``HarmonizationDataset.make_sample``'s synthesis.

    That is: the strength, the photo's recolouring, the reference (``reference_for(rng)``, may draw), then
    what ``synthesize()`` draws.
    """
    strength = sample_strength(rng, options)
    recolour = None
    if options.photo_recolour and rng.random() < options.photo_recolour:
        recolour = draw_recolour(rng)
    reference = reference_for(rng) if reference_for is not None else None
    return draw_params(rng, options, reference=reference, strength=strength, recolour=recolour)


def draw_batch(rng: np.random.Generator, n: int, options: SynthesisOptions | None = None, *,
               reference: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """``n`` training samples' parameters, stacked (benchmarks and tests; training draws them per sample)."""
    o = options or SynthesisOptions()
    rows = [draw_sample(rng, o, None if reference is None else lambda _: reference) for _ in range(n)]
    return stack_params(rows)


def stack_params(rows: list[dict]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([r[key] for r in rows]) for key in rows[0]}


# --------------------------------------------------------------------------- colour (torch, B x 3 x H x W)

_EPS, _KAPPA = np_colour._EPS, np_colour._KAPPA
_MATRICES = {  # trainer.colour's conversions with the white point folded in
    "rgb_to_xyz": np_colour._RGB_TO_XYZ / np_colour._WHITE[:, None],
    "xyz_to_rgb": np_colour._XYZ_TO_RGB * np_colour._WHITE[None, :],
}


@lru_cache(maxsize=None)
def _matrix(name: str, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(_MATRICES[name], dtype=torch.float32, device=device)


def _apply_matrix(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``m`` (3x3, or Bx3x3 per sample) applied to the channels of ``x`` (Bx3xHxW)."""
    return torch.einsum("ij,bjhw->bihw" if m.ndim == 2 else "bij,bjhw->bihw", m, x)


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp_min(0.0)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    xyz = _apply_matrix(_matrix("rgb_to_xyz", rgb.device), srgb_to_linear(rgb))
    f = torch.where(xyz > _EPS, xyz.clamp_min(0.0) ** (1 / 3), (_KAPPA * xyz + 16) / 116)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], 1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    L, a, b = lab.unbind(1)
    fy = (L + 16) / 116
    f = torch.stack([fy + a / 500, fy, fy - b / 200], 1)
    xyz = torch.where(f ** 3 > _EPS, f ** 3, (116 * f - 16) / _KAPPA)
    y = torch.where(L > _KAPPA * _EPS, fy ** 3, L / _KAPPA)  # L alone decides Y exactly (standard inverse)
    xyz = torch.stack([xyz[:, 0], y, xyz[:, 2]], 1)
    return linear_to_srgb(_apply_matrix(_matrix("xyz_to_rgb", lab.device), xyz)).clamp(0.0, 1.0)


def masked_stats_batch(x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel weighted mean and std (Bx3) of ``x`` (Bx3xHxW) with Bx1xHxW weights."""
    total = weight.sum((2, 3)).clamp_min(1e-8)
    mean = (x * weight).sum((2, 3)) / total
    var = (((x - mean[..., None, None]) ** 2) * weight).sum((2, 3)) / total
    return mean, var.clamp_min(0.0).sqrt()


# --------------------------------------------------------------------------- the transforms (torch)
# Each maps a batch to its changed batch with that batch's rows of the parameters, as the numpy
# transform of the same name maps one picture.

def stats_transfer(x, mask, p):
    lab = rgb_to_lab(x)
    weight = torch.where(mask.sum((1, 2, 3), keepdim=True) > 0, mask, torch.ones_like(mask))
    mean, std = masked_stats_batch(lab, weight)
    use_ref = p["use_reference"][:, None] > 0
    t_mean = torch.where(use_ref, p["reference_mean"], mean + p["transfer_offset"])
    t_std = torch.where(use_ref, p["reference_std"], std * p["transfer_scale"])
    t_std = torch.maximum(t_std, 0.35 * std)  # keep the change plausible: never flatten a channel completely
    scale = t_std / std.clamp_min(1e-3)
    out = (lab - mean[..., None, None]) * scale[..., None, None] + t_mean[..., None, None]
    out = torch.cat([out[:, :1].clamp(0, 100), out[:, 1:]], 1)
    return lab_to_rgb(out)


def tone_curve(x, mask, p):
    """``np.interp`` on the 6 evenly spaced knots of each sample's (and channel's) curve."""
    curve = p["curve"]  # B x 3 x 6
    b, c, h, w = x.shape
    pos = x.clamp(0, 1).reshape(b, c, h * w) * (len(_CURVE_XS) - 1)
    i = pos.floor().clamp(max=len(_CURVE_XS) - 2)
    t = pos - i
    i = i.long()
    lo, hi = curve.gather(2, i), curve.gather(2, i + 1)
    return (lo + t * (hi - lo)).reshape(b, c, h, w)


def white_balance(x, mask, p):
    return linear_to_srgb(srgb_to_linear(x) * p["white_balance"][..., None, None])


def exposure(x, mask, p):
    return linear_to_srgb(srgb_to_linear(x) * p["exposure"][:, None, None, None])


def gamma(x, mask, p):
    return x.clamp(0, 1) ** p["gamma"][:, None, None, None]


def saturation_hue(x, mask, p):
    return _apply_matrix(p["colour_matrix"], x)


APPLY = {"transfer": stats_transfer, "curve": tone_curve, "white_balance": white_balance,
         "exposure": exposure, "gamma": gamma, "saturation_hue": saturation_hue}


def recolour_batch(x: torch.Tensor, p: dict) -> torch.Tensor:
    """``recolour_photo()`` for every row (rows with ``recolour`` 0 are the caller's to keep)."""
    x = (x * p["recolour_gain"][..., None, None]).clamp(0.0, 1.0) ** p["recolour_gamma"][:, None, None, None]
    grey = x.mean(1, keepdim=True)
    x = grey + p["recolour_saturation"][:, None, None, None] * (x - grey)
    return x.clamp(0.0, 1.0)


# --------------------------------------------------------------------------- the batch

def _rows(flags: torch.Tensor, device: torch.device) -> torch.Tensor | None:
    """The indices of the rows whose flag is set, computed on the CPU copy and sent from pinned memory: a copy
    from pageable memory, or a read of the device's flags, would make the host wait for the device."""
    idx = torch.nonzero(flags.cpu() > 0).flatten()
    if not len(idx):
        return None
    return idx.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else idx.to(device)


def _take(p: dict, rows: torch.Tensor) -> dict:
    return {k: v.index_select(0, rows) for k, v in p.items()}


@torch.no_grad()
def synthesize_batch(real: torch.Tensor, mask: torch.Tensor, params: dict[str, torch.Tensor],
                     options: SynthesisOptions | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The composites of a batch, and its ground truth (the real photos, recoloured where drawn).

    ``real`` B×3×H×W in [0, 1], ``mask`` B×1×H×W, ``params`` the rows' :func:`draw_sample` (or
    :func:`draw_params`) stacked, on the CPU or the device. Outside the mask the composite is the ground
    truth exactly, and so is the whole composite of a row with strength 0.
    """
    o = options or SynthesisOptions()
    device = real.device
    real, mask = real.float(), mask.float()
    flags = {k: params[k] for k in ("recolour", "chosen")}  # row selections are read on the CPU
    p = {k: v.to(device, torch.float32, non_blocking=True) for k, v in params.items()}
    rows = _rows(flags["recolour"], device)
    if rows is not None:
        real = real.index_copy(0, rows, recolour_batch(real.index_select(0, rows), _take(p, rows)))
    changed = real
    for name in o.transforms:  # the order of synthesize(): the configured order of the transforms
        rows = _rows(flags["chosen"][:, TRANSFORM_NAMES.index(name)], device)
        if rows is not None:
            out = APPLY[name](changed.index_select(0, rows), mask.index_select(0, rows), _take(p, rows))
            changed = changed.index_copy(0, rows, out.clamp(0.0, 1.0))
    strength = p["strength"][:, None, None, None]
    fg = real + strength * (changed - real)
    comp = (mask * fg + (1 - mask) * real).clamp(0.0, 1.0)
    return torch.where(strength > 0, comp, real).contiguous(), real.contiguous()
