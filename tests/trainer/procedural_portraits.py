"""Procedural test pictures for the trainer tests (no image data ships with the venv).

A module of its own (not conftest) so that test files can import it by a unique name.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


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
