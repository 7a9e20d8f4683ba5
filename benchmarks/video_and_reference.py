"""Temporal smoothing and reference-region guidance, measured on synthetic clips and composites.

    python benchmarks/video_and_reference.py --data DIR [--weights W ...] [--size 320] [--limit 12]

DIR holds ``images/`` and ``masks/`` of real portraits (e.g. the ``test`` split written by
``python -m trainer.builders.package_portraits``). Everything is seeded; results go to stdout as
Markdown tables (docs/video-and-reference.md quotes them).

**Clips.** Each clip is two shots of ``--frames`` / 2 frames, each from its own portrait: a square
crop window that pans slowly across the photo (one pixel per frame to the right at ``--size``, and
in a photo at least as tall as it is wide also one pixel down every second frame, a diagonal path;
subject and background move together, like a slow camera pan; in a wider photo the pan starts at
the left edge, or, where a frame would miss the subject from there, across the subject) while the
lighting of the whole frame drifts (exposure ±4 % and a white-balance drift, smooth over the
shot). The ground truth is that frame; the composite is the same frame with the subject changed by
one fixed synthetic perturbation (``trainer.data.synthesis``, one seed per shot). Reported per run: the mean
frame-to-frame change of the subject's mean colour (0–255, mean absolute over RGB, within shots;
the ground truth's own change is the drift), the same for the subject's mean colour *error*
(output − ground truth: the flicker a viewer sees on top of the real lighting change), the
subject's error against the ground truth (fMSE, 0–255²) over all frames, and over the first three
frames after the cut (two where the second shot has only two: ``--frames`` 4).

**Reference composites.** A portrait's background is split at the subject's centre column; one
side is relit by a synthetic lighting change (white balance + exposure from
``trainer.data.synthesis``), and the subject is relit the same way: the ground truth is a subject
lit like that side. The composite is the ground truth with the subject's lighting undone (the
subject as in the original photo) plus a fixed synthetic perturbation. The reference mask is the lit
side. Reported: fMSE with the reference mask and without it (the whole background), both sides in turn.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if not __package__:  # run as a script: this checkout's packages, not installed ones
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from PIL import Image


from benchmarks.pairs import read_pair
from phnet import Harmonizer
from phnet.frames import estimate_frame
from phnet.temporal import Temporal, shot_starts
from trainer.colour import linear_to_srgb, srgb_to_linear
from trainer.data.common import IMAGE_EXTENSIONS, find_with_any_extension
from trainer.data.synthesis import exposure, synthesize, white_balance


Pair = tuple[str, np.ndarray, np.ndarray]  # a photo's name, the photo, its subject's mask


def load(data: Path, limit: int) -> list[Pair]:
    if not (data / "images").is_dir() or not (data / "masks").is_dir():
        raise SystemExit(f"error: {data} holds no images/ and masks/ folders: give a split of a pool (e.g. POOL/test)")
    pairs = []
    photos = [p for p in sorted((data / "images").iterdir())  # not a .DS_Store or a notes.txt beside them
              if not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS]
    for path in photos[:limit]:
        mask_path = find_with_any_extension(data / "masks", path.stem)
        if mask_path is None:
            raise SystemExit(f"error: {path.name} has no mask in {data / 'masks'} (one named {path.stem}.*)")
        image, mask = read_pair(path, mask_path)
        if not 0 < mask.mean() < 1:  # no subject, or no background: nothing to harmonize (fullres_methods skips it)
            print(f"skipped {path.name}: its mask is {'empty' if mask.mean() == 0 else 'the whole picture'}",
                  file=sys.stderr)
            continue
        pairs.append((path.name, image, mask))
    if not pairs:
        raise SystemExit(f"error: no usable image/mask pairs in {data}")
    return pairs


def fit(image: np.ndarray, mask: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize so the shorter side is ``side`` (Lanczos image, nearest mask)."""
    h, w = mask.shape
    scale = side / min(h, w)
    size = (round(w * scale), round(h * scale))
    im = np.asarray(Image.fromarray(np.uint8(np.round(image * 255))).resize(size, Image.Resampling.LANCZOS)) / 255.0
    m = np.asarray(Image.fromarray(np.uint8(mask * 255)).resize(size, Image.Resampling.NEAREST)) / 255.0
    return im.astype(np.float32), (m >= 0.5).astype(np.float32)


def relight(image: np.ndarray, gain: float, balance: np.ndarray) -> np.ndarray:
    return np.clip(linear_to_srgb(srgb_to_linear(image) * gain * balance), 0, 1).astype(np.float32)


def shot(image: np.ndarray, mask: np.ndarray, frames: int, side: int, seed: int, name: str = "a photo"):
    """(ground truths, composites, masks) of one shot, each frames×side×side."""
    big, big_mask = fit(image, mask, side + frames)
    h, w = big_mask.shape
    x0 = 0
    if w > h:  # from the left edge, unless a frame would miss the subject there: then the pan crosses the subject
        band = big_mask[(h - side) // 2 : (h - side) // 2 + side]
        cols = np.nonzero(band.any(axis=0))[0]
        if cols.size and not all(band[:, t : t + side].any() for t in range(frames)):
            x0 = int(np.clip((cols[0] + cols[-1]) // 2 - (side + frames) // 2, 0, w - side - frames))
    rng = np.random.default_rng(seed)
    balance_end = np.exp(rng.normal(0, 0.05, 3))
    gts, comps, masks = [], [], []
    for t in range(frames):
        x = x0 + t  # one pixel right per frame; one down every second frame too unless the photo is wider than tall
        y = (h - side) // 2 if w > h else t // 2
        x = min(x, w - side)
        y = min(y, h - side)
        crop, m = big[y : y + side, x : x + side], big_mask[y : y + side, x : x + side]
        if not m.any():
            raise SystemExit(f"error: {name}: its subject is outside frame {t + 1} of the panning {side}×{side} px "
                             "crop (a clip needs it in every frame): leave this photo out of --data")
        phase = t / max(frames - 1, 1)
        gt = relight(crop, 1.0 + 0.04 * np.sin(2 * np.pi * phase), balance_end ** phase)
        comp = synthesize(gt, m, np.random.default_rng(seed + 1000), strength=0.8)  # same perturbation every frame
        gts.append(gt)
        comps.append(comp)
        masks.append(m)
    return np.stack(gts), np.stack(comps), np.stack(masks)


def to_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()


def subject_means(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    return 255.0 * (images * masks).sum(dim=(2, 3)) / masks.sum(dim=(2, 3))


def fmse(images: torch.Tensor, gts: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per frame: squared error over the subject, 0–255² units (sum over pixels and channels / (3·area))."""
    err = ((images - gts) * 255.0) ** 2 * masks
    return err.sum(dim=(1, 2, 3)) / (3 * masks.sum(dim=(1, 2, 3)))


def clip_table(harmonizer: Harmonizer, pairs: list[Pair], frames: int, side: int, clips: int) -> list[str]:
    half = frames // 2
    after = min(3, frames - half)  # the second shot may have only two
    runs = {
        "per frame": None,
        "window 3 (centred)": Temporal(window=3.0),
        "window 6 (centred)": Temporal(window=6.0),
        "exponential 3 (causal)": Temporal(window=3.0, causal=True),
        "window 6, cut detection off": Temporal(window=6.0, cut_threshold=1e9),
    }
    stats: dict[str, dict[str, list[float]]] = {name: {"jump": [], "flicker": [], "fmse": [], "after": []}
                                                for name in ["composite", "ground truth", *runs]}
    found = []
    for c in range(clips):
        a, b = pairs[(2 * c) % len(pairs)], pairs[(2 * c + 1) % len(pairs)]
        g1, c1, m1 = shot(*a[1:], half, side, seed=10 * c, name=a[0])
        g2, c2, m2 = shot(*b[1:], frames - half, side, seed=10 * c + 5, name=b[0])
        gts, comps = to_tensor(np.concatenate([g1, g2])), to_tensor(np.concatenate([c1, c2]))
        masks = torch.from_numpy(np.concatenate([m1, m2]))[:, None].float()
        outputs = {"composite": comps, "ground truth": gts}
        for name, temporal in runs.items():
            outputs[name] = harmonizer(comps, masks, layout="BCHW", temporal=temporal)
        with torch.inference_mode():
            size = harmonizer.config.image_size
            estimates = [estimate_frame(harmonizer, comps[i].permute(1, 2, 0), 1.0, masks[i, 0], 1.0, size)
                         for i in range(frames)]
        found.append(shot_starts(estimates, Temporal()))
        truth = subject_means(gts, masks)
        for name, out in outputs.items():
            means = subject_means(out, masks)
            for key, series in (("jump", means), ("flicker", means - truth)):
                steps = (series[1:] - series[:-1]).abs().mean(dim=1)
                steps = torch.cat([steps[: half - 1], steps[half:]])  # not across the cut
                stats[name][key].append(float(steps.mean()))
            errors = fmse(out, gts, masks)
            stats[name]["fmse"].append(float(errors.mean()))
            stats[name]["after"].append(float(errors[half : half + after].mean()))
    lines = [
        f"{clips} clips of {frames} frames at {side}×{side} px, cut after frame {half}; detected shot starts "
        f"(default settings): {found}",
        "",
        "| run | subject colour change per frame (0–255) | change of the subject's colour error per frame "
        f"| fMSE, all frames | fMSE, {after} frames after the cut |",
        "|---|---|---|---|---|",
    ]
    for name, s in stats.items():
        lines.append(f"| {name} | {np.mean(s['jump']):.2f} | {np.mean(s['flicker']):.2f} | {np.mean(s['fmse']):.1f} "
                     f"| {np.mean(s['after']):.1f} |")
    return lines


def reference_case(image, mask, side_name: str, seed: int, size: int):
    image, mask = fit(image, mask, size)
    h, w = mask.shape
    cols = np.nonzero(mask.any(axis=0))[0]
    split = int(cols.mean()) if cols.size else w // 2
    rng = np.random.default_rng(seed)
    lit = np.zeros((h, w), np.float32)
    if side_name == "left":
        lit[:, :split] = 1
    else:
        lit[:, split:] = 1
    ctx = {"mask": mask, "reference": None}
    relit = np.clip(exposure(white_balance(image, rng, ctx), rng, ctx), 0, 1).astype(np.float32)
    region = np.clip(lit * (1 - mask) + mask, 0, 1)[..., None]  # the lit side and the subject
    gt = region * relit + (1 - region) * image
    unlit = mask[..., None] * image + (1 - mask[..., None]) * gt  # the subject as photographed
    comp = synthesize(unlit, mask, np.random.default_rng(seed + 7), strength=0.4)
    reference = lit * (1 - mask)
    return gt, comp, mask, reference


def reference_table(harmonizer: Harmonizer, pairs: list[Pair], size: int) -> list[str]:
    rows: dict[str, list[float]] = {"composite": [], "no reference mask": [], "reference = the lit side": [],
                                    "reference = the other side": []}
    for i, (_, image, mask) in enumerate(pairs):
        for k, side_name in enumerate(("left", "right")):
            gt, comp, m, reference = reference_case(image, mask, side_name, seed=100 * i + k, size=size)
            gts, comps = to_tensor(gt[None]), to_tensor(comp[None])
            masks = torch.from_numpy(m)[None, None].float()
            ref = torch.from_numpy(reference)[None, None].float()
            other = (1 - ref) * (1 - masks)
            rows["composite"].append(float(fmse(comps, gts, masks)))
            plain = harmonizer.harmonize_tensor(comps, masks)
            rows["no reference mask"].append(float(fmse(plain, gts, masks)))
            guided = harmonizer(comps, masks, layout="BCHW", reference_mask=ref)
            rows["reference = the lit side"].append(float(fmse(guided, gts, masks)))
            wrong = harmonizer(comps, masks, layout="BCHW", reference_mask=other)
            rows["reference = the other side"].append(float(fmse(wrong, gts, masks)))
    count = len(rows["composite"])
    better = sum(g < p for g, p in zip(rows["reference = the lit side"], rows["no reference mask"]))
    lines = [
        f"{count} composites ({len(pairs)} portraits × lit side left/right), shorter side {size} px; "
        f"the lit-side reference beats no reference on {better} of {count}",
        "",
        "| run | fMSE mean | fMSE median |",
        "|---|---|---|",
    ]
    for name, values in rows.items():
        lines.append(f"| {name} | {np.mean(values):.1f} | {np.median(values):.1f} |")
    return lines


def timing_table(harmonizer: Harmonizer, side: int = 320, frames: int = 24) -> list[str]:
    """Milliseconds per frame, best of 3, per-frame vs. temporal, on a random clip (the cost, not the quality)."""
    import time

    g = torch.Generator().manual_seed(0)
    images = torch.rand(frames, 3, side, side, generator=g)
    masks = torch.zeros(frames, 1, side, side)
    masks[..., side // 4 :, side // 3 : 2 * side // 3] = 1
    harmonizer(images[:2], masks[:2], layout="BCHW", temporal=3.0)  # warm-up
    runs = {"per frame (Harmonizer)": lambda: harmonizer.harmonize_tensor(images, masks),
            "temporal, window 3": lambda: harmonizer(images, masks, layout="BCHW", temporal=3.0)}
    lines = [f"{frames} frames of {side}×{side} px, one thread", "", "| run | ms per frame |", "|---|---|"]
    for name, run in runs.items():
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - t0)
        lines.append(f"| {name} | {1000 * best / frames:.1f} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, help="a split folder with images/ (not needed with --timing-only)")
    p.add_argument("--weights", action="append", help="weights (repeatable); default: the bundled default")
    p.add_argument("--size", type=int, default=320, help="frame side / composite shorter side in pixels")
    p.add_argument("--frames", type=int, default=36)
    p.add_argument("--clips", type=int, default=4)
    p.add_argument("--limit", type=int, default=12, help="portraits to use")
    p.add_argument("--timing-only", action="store_true", help="only the cost per frame")
    a = p.parse_args()
    if a.data is None and not a.timing_only:
        p.error("--data is needed for the clips and the reference region (or give --timing-only)")
    for name, value, least in (("--size", a.size, 8), ("--frames", a.frames, 4), ("--clips", a.clips, 1),
                               ("--limit", a.limit, 2)):
        if value < least:  # a clip is two shots, each of at least two frames (a change per frame needs two)
            p.error(f"{name} must be at least {least}, got {value}")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    try:  # every one loaded before any work: a bad path is one line, not a traceback after the first table
        harmonizers = [(w, Harmonizer.from_pretrained(w, device="cpu", dtype="fp32")) for w in a.weights or [None]]
    except (ValueError, OSError) as e:
        p.error(str(e))
    pairs = None if a.timing_only else load(a.data, a.limit)
    for weights, h in harmonizers:
        print(f"## {weights or 'bundled default'} (output={h.config.output!r}, working size {h.config.image_size})\n")
        print("### Cost\n")
        print("\n".join(timing_table(h, a.size)) + "\n")  # (24 frames: the cost table's own clip)
        if pairs is None:  # --timing-only
            continue
        print("### Clips\n")
        print("\n".join(clip_table(h, pairs, a.frames, a.size, a.clips)))
        print("\n### Reference region\n")
        print("\n".join(reference_table(h, pairs, a.size)))
        print()


if __name__ == "__main__":
    main()
