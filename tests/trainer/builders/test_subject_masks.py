"""trainer.builders.subject_masks (the OpenCV parts skip without OpenCV)."""
from __future__ import annotations

import numpy as np

from tests.helpers.opencv import needs_opencv
from trainer.builders import subject_masks as sm


def test_random_masks_are_within_the_accepted_area():
    needs_opencv()
    for seed in range(5):
        m = sm.random_shape_mask(96, 128, np.random.default_rng(seed))
        assert m.shape == (96, 128) and sm.MIN_FG <= m.mean() <= sm.MAX_FG


def test_object_mask_finds_a_central_subject():
    needs_opencv()
    rng = np.random.default_rng(0)
    img = (rng.random((160, 160, 3)) * 60 + 20).astype(np.uint8)   # dark textured background
    yy, xx = np.mgrid[0:160, 0:160]
    disc = (yy - 85) ** 2 + (xx - 80) ** 2 < 45 ** 2
    img[disc] = (230, 120, 40)
    m = sm.object_mask(img, seed=1)
    assert m is not None
    inter = (m & disc).sum() / (m | disc).sum()
    assert inter > 0.8
