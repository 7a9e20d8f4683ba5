"""Fixtures for the trainer tests: tiny procedural "portraits" (no image data ships with the venv)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

torch.set_num_threads(1)

TINY_MODEL = {"preset": "", "enc_sizes": [3, 8, 8, 16, 16, 32, 32], "grid_counts": [4, 2, 1],
              "image_size": 32, "output": "residual"}


def portrait(rng: np.random.Generator, h: int = 48, w: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """A textured background and an elliptical head-and-shoulders subject; uint8 image and 0/255 mask."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.uniform(0.1, 0.9, 3), rng.uniform(0.1, 0.9, 3)
    t = (xx / w * rng.uniform(0.3, 1) + yy / h * rng.uniform(0.3, 1))[..., None] / 2
    bg = c0 * (1 - t) + c1 * t
    fx, fy, ph = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0, 6)
    bg = bg + 0.08 * np.sin(xx * fx + yy * fy + ph)[..., None] + rng.normal(0, 0.02, (h, w, 3))
    head = ((yy - 0.4 * h) / (0.2 * h)) ** 2 + ((xx - 0.5 * w) / (0.15 * w)) ** 2 <= 1
    body = ((yy - 0.95 * h) / (0.35 * h)) ** 2 + ((xx - 0.5 * w) / (0.35 * w)) ** 2 <= 1
    mask = head | body
    skin = rng.uniform([0.5, 0.3, 0.2], [0.95, 0.75, 0.6])
    cloth = rng.uniform(0.05, 0.95, 3)
    subject = np.where(head[..., None], skin, cloth)
    subject = subject * (0.85 + 0.15 * np.cos(xx * 0.7 + yy * 0.3))[..., None] + rng.normal(0, 0.015, (h, w, 3))
    img = np.where(mask[..., None], subject, bg)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8), mask.astype(np.uint8) * 255


def write_photos(folder: Path, n: int, seed: int = 0, masks: Path | None = None, sizes=((48, 48), (40, 56))):
    folder.mkdir(parents=True, exist_ok=True)
    if masks is not None:
        masks.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        img, mask = portrait(rng, h, w)
        Image.fromarray(img).save(folder / f"p{i:03d}.png")
        if masks is not None:
            Image.fromarray(mask).save(masks / f"p{i:03d}.png")
    return folder


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> tuple[Path, Path]:
    """(photo folder, mask folder): 24 procedural portraits with their masks."""
    root = tmp_path_factory.mktemp("photos")
    write_photos(root / "img", 24, seed=1, masks=root / "masks")
    return root / "img", root / "masks"


@pytest.fixture(scope="session")
def synth_set(tmp_path_factory, photos) -> Path:
    """An FFHQH-layout set written by trainer.synth from the procedural photos."""
    from trainer.synth import build_synthetic_set

    out = tmp_path_factory.mktemp("synth") / "set"
    build_synthetic_set(photos[0], out, size=32, mask_dir=photos[1], copies=2, val_fraction=0.2,
                        test_fraction=0.2, seed=3)
    return out


@pytest.fixture()
def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    return env
