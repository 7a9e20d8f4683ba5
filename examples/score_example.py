"""Score weights on the README example: the subject's error against the untouched astronaut photo.

    python examples/score_example.py [WEIGHTS ...]     # default: the bundled weights

The ground truth is ``skimage.data.astronaut()`` resized exactly as ``make_example.py`` resizes it,
so this needs scikit-image (the ``data`` extra). Prints fMSE / MSE (0-255 units) of the composite
and of each model's result at full resolution.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent


def truth(side: int) -> np.ndarray:
    try:
        import skimage.data
    except ImportError:
        raise SystemExit("the real photo comes from scikit-image's sample data: pip install scikit-image") from None

    return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((side, side), Image.LANCZOS), dtype=np.float64)


def errors(picture: np.ndarray, real: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    sq = (picture.astype(np.float64) - real) ** 2
    return float(sq[mask].mean()), float(sq.mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("weights", nargs="*",
                   help="model folders or files, or official names (default: the bundled weights)")
    p.add_argument("--threshold", type=float, help="do-no-harm threshold instead of the weights' own (0 = raw)")
    a = p.parse_args()
    if a.threshold is not None and not (math.isfinite(a.threshold) and a.threshold >= 0):
        p.error(f"--threshold must be a number >= 0 (RMS, 0-255 units; 0 = raw), got {a.threshold:g}")
    from phnet import Harmonizer

    comp = np.asarray(Image.open(HERE / "composite.png").convert("RGB"))
    mask = np.asarray(Image.open(HERE / "mask.png").convert("L")) >= 128
    real = truth(comp.shape[0])
    f, m = errors(comp, real, mask)
    print(f"composite: fMSE {f:.1f}  MSE {m:.1f}")
    for w in a.weights or [None]:
        try:
            out, (correction,) = Harmonizer.from_pretrained(w, device="cpu").harmonize(
                comp, mask.astype(np.uint8) * 255, threshold=a.threshold)
        except (ValueError, OSError) as e:  # weights not found or not PHNet's, an unreachable Hub
            raise SystemExit(f"error: {e}") from None
        f, m = errors(out, real, mask)
        print(f"{w or 'bundled default'}: fMSE {f:.1f}  MSE {m:.1f}  ({correction.describe()})")


if __name__ == "__main__":
    main()
