"""The before/after picture the CLI's --compare writes."""
from __future__ import annotations

import numpy as np
from PIL import Image

from phnet.visualize import before_after

RED = (255, 64, 64)


def test_the_subject_is_outlined_where_it_is_and_nowhere_else():
    grey = Image.new("RGB", (64, 48), (128, 128, 128))
    mask = np.zeros((48, 64), np.uint8)
    mask[10:48, 40:64] = 255  # touching the bottom and right borders
    sheet = np.asarray(before_after(grey, grey, Image.fromarray(mask), height=48))
    left = sheet[28:, :64]
    red = (left == RED).all(-1)
    assert red[10, 40:].all() and red[10:, 40].all()  # the subject's top and left sides
    assert not red[:, :40].any() and not red[:10].any()  # no outline wrapped round to the opposite borders
