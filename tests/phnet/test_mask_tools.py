"""phnet.mask_tools: grow, shrink, feather and bounding boxes of any mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from phnet.mask_tools import gaussian_blur, inverted_masks, looks_inverted, mask_bbox, refine_mask


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


def _grown_by_definition(m, radius):
    # the octagon: a square of radius ceil(r/2) grown by a diamond of radius floor(r/2)
    square, diamond = (radius + 1) // 2, radius // 2
    h, w = m.shape
    out = np.zeros_like(m)
    for y in range(h):
        for x in range(w):
            for yy in range(max(0, y - radius), min(h, y + radius + 1)):
                for xx in range(max(0, x - radius), min(w, x + radius + 1)):
                    if max(abs(yy - y) - square, 0) + max(abs(xx - x) - square, 0) <= diamond:
                        out[y, x] = max(out[y, x], m[yy, xx])
    return out


@pytest.mark.parametrize("radius", [1, 2, 3, 4, 7, 10])
def test_grow_and_shrink_follow_the_octagon(radius):
    # grey masks, pixels on every edge, shapes thinner than the radius
    rng = np.random.default_rng(radius)
    m = np.where(rng.random((13, 17)) > 0.9, rng.random((13, 17)), 0.0).astype(np.float32)
    m[0, 3] = m[12, 16] = m[6, 0] = 1.0
    np.testing.assert_array_equal(refine_mask(m, grow=radius), _grown_by_definition(m, radius))
    np.testing.assert_allclose(refine_mask(1.0 - m, grow=-radius), 1.0 - _grown_by_definition(m, radius),
                               atol=1e-6)


def test_feather_is_a_replicate_padded_gaussian():
    # a wide feather is no slower than a narrow one, and still the same sum
    m = np.zeros((30, 50), np.float32)
    m[5:30, 20:50] = 1.0
    sigma = 6.0
    r = int(np.ceil(3 * sigma))
    x = np.arange(-r, r + 1)
    k = np.exp(-(x**2) / (2 * sigma**2))
    k /= k.sum()
    padded = np.pad(m.astype(np.float64), r, mode="edge")
    rows = np.stack([np.convolve(row, k, mode="valid") for row in padded])
    want = np.stack([np.convolve(col, k, mode="valid") for col in rows.T]).T
    got = refine_mask(m, feather=sigma)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert (want == 0).any() and (got[want == 0] == 0).all()  # no trace where the blur does not reach
    assert (want > 1 - 1e-9).any() and (got[want > 1 - 1e-9] == 1).all()  # whole where only the subject is


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
    with pytest.raises(ValueError, match="grow must be a whole number of pixels, got '3'"):  # was a TypeError
        refine_mask(m, grow="3")
    with pytest.raises(ValueError, match="grow must be a whole number of pixels"):  # was an OverflowError
        refine_mask(m, grow=10**400)
    for bad in (2.5, np.float32(-0.5)):  # rounded (2.5 grew by 2) although the message says whole
        with pytest.raises(ValueError, match=r"grow must be a whole number of pixels, got .*(2\.5|-0\.5)"):
            refine_mask(m, grow=bad)
    np.testing.assert_array_equal(refine_mask(m, grow=2.0), refine_mask(m, grow=2))
    for bad in (float("nan"), float("inf"), -1.0, None):  # NaN and inf were raw int() errors
        with pytest.raises(ValueError, match="sigma must be a number >= 0"):
            gaussian_blur(m, bad)
    for bad in (float("nan"), 1.5):  # NaN read as "no subject"
        with pytest.raises(ValueError, match="threshold must be a number in 0..1"):
            mask_bbox(m, bad)
    assert refine_mask(m, grow=np.int64(2), feather=np.float32(0)).sum() > m.sum()  # numpy numbers are numbers


def test_a_feather_wider_than_the_mask_is_refused_before_its_kernel_is_built():
    # one of 1e5 took 10 s and left all zeros, 1e7 asked the allocator for 11 GB
    m = np.zeros((48, 64), np.float32)
    m[20:22, 30:32] = 1.0
    assert refine_mask(m, feather=64).max() > 0  # as wide as the mask: still taken
    for wide in (64.5, 3000, 1e7, 1e300):
        with pytest.raises(ValueError, match=r"feather .* is wider than the 64x48 mask.*at most 64 pixels"):
            refine_mask(m, feather=wide)


def test_a_blur_wider_than_the_mask_is_refused_before_its_kernel_is_built():
    """gaussian_blur had no limit of its own: a sigma of 1e5 on a 20x20 mask took 5 s and 800 MB."""
    m = np.zeros((48, 64), np.float32)
    m[20:22, 30:32] = 1.0
    assert gaussian_blur(m, 64).max() > 0  # as wide as the mask: still taken
    for wide in (64.5, 1e5, 1e300):
        with pytest.raises(ValueError, match=r"sigma .* is wider than the 64x48 mask.*give a sigma of at most 64"):
            gaussian_blur(m, wide)


def test_a_blur_too_narrow_to_reach_the_next_pixel_leaves_the_mask_as_it_was():
    """Under about 1e-22 a sigma's 2σ² was 0 in float32 and every pixel came back NaN (the SAM Segment node then
    said its grow had shrunk the mask to nothing)."""
    m = _square()
    for tiny in (1e-30, 5e-324, 1e-3):
        np.testing.assert_array_equal(gaussian_blur(m, tiny), m)
        np.testing.assert_array_equal(refine_mask(m, feather=tiny), m)


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


def test_a_grow_past_the_mask_gives_what_the_dilation_gives_without_its_padding():
    """A grow of 1e7 padded the mask by 1e7 pixels on every side before it could say anything."""
    from phnet.mask_tools import _dilate

    m = np.zeros((7, 11), np.float32)
    m[2, 3], m[5, 9] = 0.7, 0.4
    t = torch.from_numpy(m)[None, None]
    for radius in (22, 23, 30):
        assert np.array_equal(refine_mask(m, grow=radius), _dilate(t, radius)[0, 0].numpy())
        assert np.array_equal(refine_mask(1 - m, grow=-radius), 1 - _dilate(t, radius)[0, 0].numpy())
    assert np.array_equal(refine_mask(m, grow=1e7), np.full_like(m, 0.7))
    assert np.array_equal(refine_mask(1 - m, grow=-1e7), np.full_like(m, 0.3))


def test_looks_inverted_takes_a_cut_outs_transparent_part_not_a_subject_filling_the_picture():
    m = _square()
    assert looks_inverted(m) is None and looks_inverted(torch.from_numpy(m)) is None
    area, border = looks_inverted(1 - m)
    assert (area, border) == pytest.approx((0.9375, 1.0)) and looks_inverted(torch.from_numpy(1 - m)) == (area, border)
    assert looks_inverted(np.ones((40, 40), np.float32)) is None  # whole: another refusal
    face = np.ones((40, 40), np.float32)
    face[:8, :8] = face[:8, -8:] = face[-8:, :8] = face[-8:, -8:] = 0  # fills its picture but for its corners
    assert looks_inverted(face) is None


def test_inverted_masks_refuse_a_batch_for_one_and_a_clip_for_most_of_those_with_a_subject():
    m = _square()
    empty, whole = np.zeros_like(m), np.ones_like(m)  # a frame the subject left: inverted, it is whole
    assert inverted_masks([m, 1 - m]) == [(1, pytest.approx(0.9375), 1.0)]
    assert inverted_masks([m, 1 - m], clip=True) == []  # one of two: a subject may fill a frame
    assert [i for i, *_ in inverted_masks(iter([1 - m, empty, 1 - m, whole]), clip=True)] == [0, 2]  # 2 of 3
    assert inverted_masks([m, m, 1 - m], clip=True) == [] and inverted_masks([m, m]) == []
    assert inverted_masks([torch.from_numpy(1 - m)] * 2, clip=True)[0][1:] == pytest.approx((0.9375, 1.0))


def test_inverted_masks_read_a_clip_no_further_than_its_outcome_is_known():
    """A clip was read to its end, all of it, to find that it could not be refused after its first half."""
    m = _square()
    read = []

    def masks(given):
        for i, mask in enumerate(given):
            read.append(i)
            yield mask

    assert inverted_masks(masks([m, 1 - m, m, m, 1 - m, 1 - m]), clip=True, total=6) == [] and read == [0, 1, 2, 3]
    read.clear()  # a refused clip is read to its end: every inverted mask is counted
    assert [i for i, *_ in inverted_masks(masks([1 - m, 1 - m, m, 1 - m]), clip=True, total=4)] == [0, 1, 3]
    assert read == [0, 1, 2, 3]


def test_a_blur_too_narrow_to_reach_the_next_pixel_leaves_a_soft_16_bit_mask_exactly_as_it_was():
    """A soft edge is not snapped to 0 or 1 as a binary mask is, so any trip through the blur would show."""
    m = (np.arange(37 * 23, dtype=np.float32).reshape(37, 23) * 61 % 65536 / 65535).astype(np.float32)
    for tiny in (1e-3, 0.05):
        np.testing.assert_array_equal(gaussian_blur(m, tiny), m)
        np.testing.assert_array_equal(refine_mask(m, feather=tiny), m)


def test_looks_inverted_reads_the_border_as_the_picture_s_four_outermost_rows_and_columns():
    """The inverted mask of a subject widening down to the bottom edge: its hole is wider in the last row than
    in the one above, and only the last row is the border."""
    h, w = 30, 40
    yy, xx = np.mgrid[:h, :w]
    hole = abs(xx - 20) <= (yy - 5) // 2
    m = (~hole).astype(np.float32)
    assert (m[-1] != m[-2]).any()
    on = m >= 0.5
    edges = np.concatenate([on[0], on[-1], on[:, 0], on[:, -1]])
    area, border = looks_inverted(m)
    assert area == pytest.approx(on.mean()) and border == pytest.approx(edges.mean())
