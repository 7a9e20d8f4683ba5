"""The noise photos and box masks the Harmonizer's tests and its steps' tests share, and the picture turned by its
EXIF orientation that the imageio tests share."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


def subject_mask(h, w, soft=False):
    m = np.zeros((h, w), np.float32)
    m[h // 4 : 3 * h // 4, w // 3 : 2 * w // 3] = 1
    if soft:
        m[h // 4, :] *= 0.5
    return m


def photo(h, w, seed=0, channels=3):
    rng = np.random.default_rng(seed)
    return (rng.random((h, w, channels)) * 255).astype(np.uint8)


def exif_rotated(array: np.ndarray, orientation: int) -> Image.Image:
    """``array`` saved as a PNG whose EXIF gives ``orientation``, opened again (not loaded yet)."""
    img = Image.fromarray(array)
    exif = img.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, "PNG", exif=exif)
    buf.seek(0)
    return Image.open(buf)
