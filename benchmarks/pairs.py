"""A photo and its mask as the benchmarks read them: float RGB in 0..1 and a 0/1 mask of the photo's size."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def read_pair(photo: Path, mask: Path) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(Image.open(photo).convert("RGB"), dtype=np.float32) / 255.0
    hard = (np.asarray(Image.open(mask).convert("L"), dtype=np.float32) / 255.0 >= 0.5).astype(np.float32)
    if hard.shape != image.shape[:2]:  # resized to one shape, the photo would be stretched to the mask's
        raise SystemExit(f"error: the mask {mask} is {hard.shape[1]}×{hard.shape[0]} px and its photo {photo} is "
                         f"{image.shape[1]}×{image.shape[0]} px: give each photo a mask of its own size")
    return image, hard
