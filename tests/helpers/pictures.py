"""The noise photos and box masks the Harmonizer's tests and its steps' tests share."""
from __future__ import annotations

import numpy as np


def subject_mask(h, w, soft=False):
    m = np.zeros((h, w), np.float32)
    m[h // 4 : 3 * h // 4, w // 3 : 2 * w // 3] = 1
    if soft:
        m[h // 4, :] *= 0.5
    return m


def photo(h, w, seed=0, channels=3):
    rng = np.random.default_rng(seed)
    return (rng.random((h, w, channels)) * 255).astype(np.uint8)
