"""Which way of carrying a working-resolution result up to full resolution loses least?

    python benchmarks/fullres_methods.py --data DIR [--weights W] [--size 256] [--limit 40]

DIR holds ``images/`` and ``masks/`` of real photos (e.g. the ``val`` split written by
``python -m trainer.builders.package_portraits OUT --val-size 1024``). Each photo gets a seeded
synthetic composite (trainer.data.synthesis) at its native resolution. The network's job is played
either by an oracle (the ground truth at working resolution: measures the upsampling alone) or by
real weights (``--weights``). Scores are PSNR / fPSNR at native resolution, next to the same
prediction scored at working resolution. The "tiled" rows are what ``Harmonizer`` runs: its own
downscale and the change applied tile by tile in the caller's dtype; "8-bit" rows take the
composite rounded to 8 bits and round the output, as for an 8-bit photo (the reference row with
"8-bit" is the whole-image float method given and giving the same 8-bit pixels). A photo whose subject
vanishes at the working size has no fMSE there to set beside the native ones, and a photo black everywhere no
PSNR against its own peak: they are left out of every row, and counted in the first line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if not __package__:  # run as a script: this checkout's packages, not installed ones
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch


from benchmarks.pairs import read_pair
from phnet import metrics
from phnet.console import printable_anywhere
from phnet.fullres import apply_full_resolution, apply_in_tiles, bounding_box, downscale, lift
from phnet.fullres import resize, subject_coverage, working_shape
from trainer.data.common import IMAGE_EXTENSIONS, find_with_any_extension
from trainer.data.synthesis import synthesize

METHODS = ("official", "resize", "correction", "guided")
TILED = ("correction", "guided")


def tiled(image, mask, gt, method, model, size, eight_bit):
    """The Harmonizer's path: its downscale, the change applied tile by tile in the pixels' dtype."""
    height, width = image.shape[-2:]
    peak = 255.0 if eight_bit else 1.0
    pixels = image[0].permute(1, 2, 0).contiguous()
    pixels = (pixels * 255).round().to(torch.uint8) if eight_bit else pixels
    mask8 = (mask[0, 0] * 255).round().to(torch.uint8)
    shape = working_shape(height, width, size)
    image_low = downscale(pixels, peak, shape)
    mask_low = (downscale(mask8[..., None], 255.0, shape) >= 0.5).float()
    if model is None:
        pred_low = resize(gt, shape)
    else:
        with torch.no_grad():
            pred_low = model(image_low, mask_low)
    pred_low = pred_low * mask_low + image_low * (1 - mask_low)
    out, box = pixels.clone(), bounding_box(mask8)
    colour_map = lift(method, image_low, pred_low, mask_low, (height, width), box, peak,
                      subject_coverage(mask8, 255.0, shape))
    apply_in_tiles(pixels, out, mask8, 1 / 255, peak, colour_map, box)
    return out.permute(2, 0, 1)[None].float() / peak


def eight_bit(x):
    return (x * 255).round() / 255


def load_pairs(root: Path, limit: int):
    images = [p for p in sorted((root / "images").iterdir())  # not a .DS_Store taking a place of the limit
              if not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS][:limit]
    for path in images:
        mask = find_with_any_extension(root / "masks", path.stem)  # a name like portrait[1] is no pattern
        if mask is None:
            continue
        real, m = read_pair(path, mask)
        if 0 < m.mean() < 1:
            yield path.stem, real, m


def main() -> int:
    printable_anywhere()  # a table's − and Δ in a cp1252 file (Windows)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path,
                        help="a split folder holding images/ and masks/ (e.g. POOL/val of package_portraits)")
    parser.add_argument("--weights", help="score a real model instead of the oracle")
    parser.add_argument("--size", type=int, default=256, help="working resolution")
    parser.add_argument("--limit", type=int, default=40)
    args = parser.parse_args()
    if args.size < 8 or args.size % 8:
        parser.error(f"--size must be a multiple of 8 (the network's downsampling), got {args.size}")
    if args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")
    if not (args.data / "images").is_dir() or not (args.data / "masks").is_dir():
        parser.error(f"--data {args.data} holds no images/ and masks/: give a split folder, e.g. POOL/val of "
                     "python -m trainer.builders.package_portraits POOL")
    model = None
    if args.weights:
        from phnet.weights import load_model

        try:
            model = load_model(args.weights)
        except (ValueError, OSError) as e:
            parser.error(str(e))
    extra = [f"{t}, {kind}" for t in TILED for kind in ("tiled", "8-bit", "8-bit, tiled")]
    native = {m: metrics.MetricTracker() for m in METHODS + tuple(extra)}
    low_scores = metrics.MetricTracker()
    sides, vanished, black = [], 0, 0
    for i, (name, real, mask) in enumerate(load_pairs(args.data, args.limit)):
        if not real.any():
            black += 1
            continue
        m = torch.from_numpy(mask)[None, None]
        height, width = real.shape[:2]
        shape = working_shape(height, width, args.size)
        m_low = (resize(m, shape) >= 0.5).float()
        if not m_low.any():
            vanished += 1
            continue
        comp = synthesize(real, mask, np.random.default_rng(1000 + i), strength=1.0)
        gt = torch.from_numpy(real).permute(2, 0, 1)[None]
        image = torch.from_numpy(np.ascontiguousarray(comp, np.float32)).permute(2, 0, 1)[None]
        sides.append(min(real.shape[:2]))
        image_low, gt_low = resize(image, shape), resize(gt, shape)
        coverage = subject_coverage(m[0, 0], 1.0, shape)  # as the Harmonizer reads it
        if model is None:
            pred_low = gt_low
        else:
            with torch.no_grad():
                pred_low = model(image_low, m_low)
        pred_low = pred_low * m_low + image_low * (1 - m_low)
        low_scores.update(pred_low, gt_low, m_low, composite=image_low)
        for method in METHODS:
            if method == "official":  # square working image, whole result resized back
                sq = (args.size, args.size)
                im_sq, m_sq = resize(image, sq), (resize(m, sq, "nearest-exact") >= 0.5).float()
                if model is None:
                    p_sq = resize(gt, sq)
                else:
                    with torch.no_grad():
                        p_sq = model(im_sq, m_sq)
                out = resize(p_sq * m_sq + im_sq * (1 - m_sq), real.shape[:2], "bicubic").clamp(0, 1)
            else:
                up = apply_full_resolution(image, m, image_low, pred_low, m_low, method, coverage).clamp(0, 1)
                out = up * m + image * (1 - m)
            native[method].update(out, gt, m, composite=image)
        for method in TILED:
            out = tiled(image, m, gt, method, model, args.size, eight_bit=False)
            native[f"{method}, tiled"].update(out, gt, m, composite=image)
            image8 = eight_bit(image)
            low8 = resize(image8, shape)
            if model is None:
                pred8 = gt_low
            else:
                with torch.no_grad():
                    pred8 = model(low8, m_low)
            pred8 = pred8 * m_low + low8 * (1 - m_low)
            up = apply_full_resolution(image8, m, low8, pred8, m_low, method, coverage).clamp(0, 1)
            native[f"{method}, 8-bit"].update(eight_bit(up * m + image8 * (1 - m)), gt, m, composite=image)
            out = tiled(image, m, gt, method, model, args.size, eight_bit=True)
            native[f"{method}, 8-bit, tiled"].update(out, gt, m, composite=image)
    gone = "; ".join(f"{n} {why}" for n, why in ((vanished, "whose subject vanishes at the working size"),
                                                  (black, "black everywhere (no peak of their own for PSNR)")) if n)
    if not sides:
        fix = "; give a larger --size" if vanished else ""
        raise SystemExit(f"every photo in {args.data} was left out: {gone}{fix}" if gone else
                         f"no image/mask pairs in {args.data}")
    low = low_scores.summary()
    who = f"weights {args.weights}" if args.weights else "oracle (ground truth at working resolution)"
    note = f" (left out: {gone})" if gone else ""
    print(f"{len(sides)} composites{note}, native short side {min(sides)}–{max(sides)} px, working size {args.size}, "
          f"{who}\n")
    print("| pipeline | MSE | fMSE | PSNR | fPSNR | PSNR − PSNR@working |")
    print("|---|---:|---:|---:|---:|---:|")
    c = native["official"].summary()["composite"]["all"]
    print(f"| composite (do nothing), native | {c['MSE']:.1f} | {c['fMSE']:.1f} | {c['PSNR']:.2f} | "
          f"{c['fPSNR']:.2f} | |")
    w = low["model"]["all"]
    print(f"| prediction at working resolution | {w['MSE']:.1f} | {w['fMSE']:.1f} | {w['PSNR']:.2f} | "
          f"{w['fPSNR']:.2f} | 0 |")
    for method in native:
        s = native[method].summary()["model"]["all"]
        print(f"| {method}, native | {s['MSE']:.1f} | {s['fMSE']:.1f} | {s['PSNR']:.2f} | {s['fPSNR']:.2f} | "
              f"{s['PSNR'] - w['PSNR']:+.2f} |")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(2)  # the script's own: main() called from a program leaves its thread count alone
    sys.exit(main())
