"""Re-create the example composite shipped in this folder.

    python examples/make_example.py            # writes examples/composite.png, examples/mask.png

Source: ``skimage.data.astronaut()`` from scikit-image (a NASA photograph of astronaut
Eileen Collins, public domain; see examples/README.md). The person mask comes from the
data-set builder's documented method (Haar face cascade seeding GrabCut,
``trainer.builders.subject_masks.subject_mask``); the person is then given a fixed,
clearly visible colour cast, so the picture looks like a cut-out pasted from another photo.

Needs the ``data`` extra (``scikit-image``, ``opencv-python-headless<5``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
SIDE = 384  # keeps composite + mask under 300 KB


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def colour_cast(rgb: np.ndarray) -> np.ndarray:
    """Cold, darker, less contrasted: the look of a subject shot under other light."""
    lin = srgb_to_linear(rgb) * np.array([0.55, 0.78, 1.20])   # cold white balance, -0.5 EV
    out = linear_to_srgb(lin)
    return np.clip(0.5 + 0.8 * (out - 0.5) + 0.04, 0.0, 1.0)    # flatter contrast, lifted blacks


def make(out_dir: Path = HERE, side: int = SIDE) -> tuple[Path, Path]:
    try:
        import skimage.data
    except ImportError:  # (OpenCV missing alone is named by subject_masks)
        raise SystemExit("the photo comes from scikit-image's sample data and the mask from OpenCV: "
                         'pip install scikit-image "opencv-python-headless<5"') from None

    from trainer.builders.subject_masks import GRABCUT_SIDE, detect_face, person_mask

    photo = Image.fromarray(skimage.data.astronaut())
    small = np.asarray(photo.resize((GRABCUT_SIDE, GRABCUT_SIDE), Image.LANCZOS))
    face = detect_face(small)
    small_mask = None if face is None else person_mask(small, face, seed=0)
    if small_mask is None:
        raise RuntimeError("the face-seeded GrabCut found no person in the astronaut photo")
    real = np.asarray(photo.resize((side, side), Image.LANCZOS))
    mask = np.asarray(Image.fromarray(small_mask.astype(np.uint8) * 255).resize((side, side), Image.BILINEAR)) >= 128
    r = real.astype(np.float64) / 255.0
    m = mask.astype(np.float64)[..., None]
    comp = m * colour_cast(r) + (1 - m) * r
    out_dir.mkdir(parents=True, exist_ok=True)
    cp, mp = out_dir / "composite.png", out_dir / "mask.png"
    Image.fromarray(np.round(comp * 255).astype(np.uint8)).save(cp, optimize=True)
    Image.fromarray(mask.astype(np.uint8) * 255, "L").save(mp, optimize=True)
    return cp, mp


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=HERE, help="output folder (default: examples/)")
    p.add_argument("--side", type=int, default=SIDE, help=f"image side in pixels (default {SIDE})")
    a = p.parse_args()
    if a.side < 16:
        p.error(f"--side must be at least 16 pixels, got {a.side}")
    for path in make(a.out, a.side):
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
