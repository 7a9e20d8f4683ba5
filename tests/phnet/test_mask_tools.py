"""phnet.mask_tools: grow, shrink, feather and bounding boxes of any mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from phnet.mask_tools import mask_bbox, refine_mask


def _square(size=40, lo=15, hi=25):
    m = np.zeros((size, size), np.float32)
    m[lo:hi, lo:hi] = 1.0
    return m


def test_refine_identity():
    m = _square()
    out = refine_mask(m)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, m)


def test_refine_grow_and_shrink():
    m = _square()
    assert mask_bbox(refine_mask(m, grow=3)) == (12, 12, 28, 28)
    assert mask_bbox(refine_mask(m, grow=-2)) == (17, 17, 23, 23)
    assert refine_mask(m, grow=3).sum() > m.sum() > refine_mask(m, grow=-2).sum()
    # a subject touching the border is not eaten from the border side
    edge = np.zeros((20, 20), np.float32)
    edge[:, :10] = 1
    assert refine_mask(edge, grow=-2)[:, :8].min() == 1.0


def test_refine_feather():
    m = _square(lo=10, hi=30)
    soft = refine_mask(m, feather=2.0)
    assert soft.dtype == np.float32 and soft.min() >= 0.0 and soft.max() <= 1.0
    assert 0.0 < soft[10, 20] < 1.0 and 0.0 < soft[9, 20] < 1.0  # edges are soft on both sides
    assert soft[20, 20] == pytest.approx(1.0, abs=1e-3)
    assert soft.sum() == pytest.approx(m.sum(), rel=1e-3)  # blur moves mass, keeps it
    for bad in (-1, float("nan"), float("inf")):  # NaN was ignored, inf overflowed
        with pytest.raises(ValueError, match="feather must be a number >= 0"):
            refine_mask(m, feather=bad)
    with pytest.raises(ValueError, match="grow must be a whole number of pixels, got nan"):
        refine_mask(m, grow=float("nan"))


def test_refine_accepts_other_kinds():
    m = _square()
    np.testing.assert_array_equal(refine_mask(torch.from_numpy(m), grow=1), refine_mask(m, grow=1))
    pil = Image.fromarray((m * 255).astype(np.uint8))
    np.testing.assert_array_equal(refine_mask(pil, grow=1), refine_mask(m, grow=1))
    np.testing.assert_array_equal(refine_mask(m[None, :, :, None], grow=1), refine_mask(m, grow=1))


def test_masks_follow_the_imageio_rules():
    # phnet.imageio reads every mask: uint8 is 0..255, a float outside 0..1 is an error, not clipped
    np.testing.assert_array_equal(refine_mask((_square() * 255).astype(np.uint8)), _square())
    with pytest.raises(ValueError, match=r"0\.\.1"):
        refine_mask(_square() * 2)
    with pytest.raises(ValueError, match="one mask"):
        mask_bbox(np.zeros((2, 5, 5)))


def test_mask_bbox():
    assert mask_bbox(_square()) == (15, 15, 25, 25)
    assert mask_bbox(np.zeros((5, 5))) is None
    assert mask_bbox(np.full((5, 5), 0.4)) is None
    assert mask_bbox(np.full((5, 5), 0.4), threshold=0.3) == (0, 0, 5, 5)
