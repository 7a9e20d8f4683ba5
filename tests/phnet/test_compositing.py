"""phnet.compositing: paste_subject (placement, anchors, clipping, alpha, input kinds) and a batch's pairing, checks and
refusals (paste_batch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from phnet.compositing import paste_subject
from phnet.corrections import summary
from phnet.mask_tools import mask_bbox
from tests.helpers.pictures import photo, subject_mask


def _bg(h=40, w=60):
    return np.full((h, w, 3), 0.25, np.float32)


def _subject(h=10, w=8, value=(1.0, 0.0, 0.0)):
    return np.broadcast_to(np.asarray(value, np.float32), (h, w, 3)).copy()


def test_top_left_placement():
    comp, mask = paste_subject(_bg(), _subject(), x=5, y=7)
    assert comp.shape == (40, 60, 3) and comp.dtype == np.float32
    assert mask.shape == (40, 60) and mask.dtype == np.float32
    assert mask_bbox(mask) == (5, 7, 13, 17)
    np.testing.assert_array_equal(comp[7:17, 5:13], _subject())
    # outside the subject the background is untouched
    outside = mask == 0
    np.testing.assert_array_equal(comp[outside], _bg()[outside])


@pytest.mark.parametrize(
    "anchor,expected",
    [
        ("top-left", (30, 20, 38, 30)),
        ("center", (26, 15, 34, 25)),
        ("bottom-center", (26, 10, 34, 20)),
    ],
)
def test_anchors(anchor, expected):
    _, mask = paste_subject(_bg(), _subject(), x=30, y=20, anchor=anchor)
    assert mask_bbox(mask) == expected


def test_scale_resizes_subject_and_mask():
    alpha = np.zeros((10, 8), np.float32)
    alpha[2:8, 2:6] = 1.0
    comp, mask = paste_subject(_bg(), _subject(), subject_mask=alpha, x=0, y=0, scale=2.0)
    x0, y0, x1, y1 = mask_bbox(mask)
    assert (x1 - x0, y1 - y0) == pytest.approx((8, 12), abs=1)
    _, full = paste_subject(_bg(), _subject(), x=10, y=10, scale=0.5)
    assert mask_bbox(full) == (10, 10, 14, 15)
    # downscaling is antialiased: a 1-px checkerboard averages to grey, no aliasing
    checker = (np.indices((20, 20)).sum(0) % 2).astype(np.float32)
    comp, _ = paste_subject(_bg(), np.repeat(checker[..., None], 3, -1), x=0, y=0, scale=0.5)
    np.testing.assert_allclose(comp[1:9, 1:9], 0.5, atol=0.02)


def test_partly_outside_is_clipped():
    comp, mask = paste_subject(_bg(), _subject(), x=-3, y=35)
    assert mask_bbox(mask) == (0, 35, 5, 40)
    np.testing.assert_array_equal(comp[35:40, 0:5], _subject()[:5, 3:])
    comp, mask = paste_subject(_bg(), _subject(), x=58, y=-9)
    assert mask_bbox(mask) == (58, 0, 60, 1)


def test_fully_outside_raises():
    with pytest.raises(ValueError, match="entirely outside the 60x40 background"):
        paste_subject(_bg(), _subject(), x=60, y=0)
    with pytest.raises(ValueError, match="entirely outside"):
        paste_subject(_bg(), _subject(), x=-8, y=5)
    with pytest.raises(ValueError, match="entirely outside"):
        paste_subject(_bg(), _subject(), x=10, y=0, anchor="bottom-center")
    margin = np.zeros((10, 10, 4), np.float32)  # a cut-out whose visible half lands off the background
    margin[:, 6:] = 1
    with pytest.raises(ValueError, match="no opaque part of the subject lands on the 60x40 background .*move x/y"):
        paste_subject(_bg(), margin, x=55, y=5)  # came back as the background and an empty mask, without a word
    assert not paste_subject(_bg(), margin, x=55, y=5, allow_empty=True)[1].any()
    with pytest.raises(ValueError, match="subject's alpha is transparent everywhere, so there is nothing to paste"):
        paste_subject(_bg(), np.zeros((10, 10, 4), np.float32), x=5, y=5)  # no x/y would help
    with pytest.raises(ValueError, match="subject_mask is empty, so there is nothing to paste"):
        paste_subject(_bg(), _subject(), np.zeros((10, 8), np.float32), x=5, y=5)


def test_rgba_alpha_is_the_mask():
    rgba = np.zeros((10, 8, 4), np.uint8)
    rgba[..., 1] = 255
    rgba[3:7, 2:6, 3] = 255
    rgba[0, 0, 3] = 100  # soft alpha survives (below the 0.5 bbox threshold)
    comp, mask = paste_subject(_bg(), rgba, x=10, y=10)
    assert mask_bbox(mask) == (12, 13, 16, 17)
    assert mask[10, 10] == pytest.approx(100 / 255)
    np.testing.assert_allclose(comp[10, 10], 0.25 * (1 - 100 / 255) + np.array([0, 1, 0]) * 100 / 255, atol=1e-6)
    np.testing.assert_array_equal(comp[13:17, 12:16], np.broadcast_to([0, 1, 0], (4, 4, 3)))
    # PIL RGBA works the same
    comp2, mask2 = paste_subject(Image.fromarray((_bg() * 255).astype(np.uint8)), Image.fromarray(rgba), x=10, y=10)
    np.testing.assert_array_equal(mask2, mask)


def test_explicit_mask_overrides_alpha():
    rgba = np.zeros((10, 8, 4), np.float32)
    rgba[..., 3] = 1.0
    m = np.zeros((10, 8), np.float32)
    m[:5] = 1.0
    _, mask = paste_subject(_bg(), rgba, subject_mask=m, x=0, y=0)
    assert mask_bbox(mask) == (0, 0, 8, 5)
    _, mask = paste_subject(_bg(), rgba, subject_mask=Image.fromarray((m * 255).astype(np.uint8)), x=0, y=0)
    assert mask_bbox(mask) == (0, 0, 8, 5)


def test_no_mask_pastes_rectangle():
    _, mask = paste_subject(_bg(), _subject(), x=1, y=2)
    assert mask.sum() == 80 and mask.max() == 1.0


def test_grey_inputs_and_types():
    bg_grey = np.full((40, 60), 64, np.uint8)
    subj_grey = np.full((10, 8), 1.0, np.float32)
    comp, mask = paste_subject(bg_grey, subj_grey, x=0, y=0)
    assert comp.shape == (40, 60, 3)
    np.testing.assert_allclose(comp[20, 30], 64 / 255)
    np.testing.assert_array_equal(comp[0, 0], [1, 1, 1])
    # grey + alpha (LA)
    la = np.zeros((10, 8, 2), np.float32)
    la[..., 0] = 1.0
    la[:, :4, 1] = 1.0
    _, mask = paste_subject(bg_grey, la, x=0, y=0)
    assert mask_bbox(mask) == (0, 0, 4, 10)
    # torch in, numpy out
    comp_t, _ = paste_subject(torch.from_numpy(_bg()), torch.from_numpy(_subject()), x=5, y=7)
    np.testing.assert_array_equal(comp_t, paste_subject(_bg(), _subject(), x=5, y=7)[0])


def test_transparent_colour_does_not_bleed():
    # a subject whose transparent half is bright blue garbage: after a resize the edge
    # must stay red, not purple
    rgba = np.zeros((10, 10, 4), np.float32)
    rgba[:, :5] = (1, 0, 0, 1)
    rgba[:, 5:] = (0, 0, 1, 0)
    comp, mask = paste_subject(np.zeros((30, 30, 3), np.float32), rgba, x=0, y=0, scale=2.3)
    edge = (mask > 0.05) & (mask < 0.95)
    assert edge.any()
    premult = comp[edge]
    # composite over black = colour * alpha: the blue channel stays zero
    assert premult[:, 2].max() < 1e-5


def test_bad_arguments():
    with pytest.raises(ValueError, match="anchor must be one of"):
        paste_subject(_bg(), _subject(), anchor="middle")
    for anchor in (["center"], {"a": 1}, 3):  # (a list or dict, as a WebUI API client may send, ended in a TypeError)
        with pytest.raises(ValueError, match=r"anchor must be one of \['top-left', 'center', 'bottom-center'\]"):
            paste_subject(_bg(), _subject(), anchor=anchor)
    with pytest.raises(ValueError, match="scale must be a positive"):
        paste_subject(_bg(), _subject(), scale=0)
    with pytest.raises(ValueError, match="same size"):
        paste_subject(_bg(), _subject(), subject_mask=np.ones((3, 3)))
    with pytest.raises(ValueError, match="background must be"):
        paste_subject(np.zeros((3, 40, 60, 3)), _subject())
    for x in (None, "5", True, float("nan")):  # (None and "5" ended in a TypeError)
        with pytest.raises(ValueError, match="x and y must be finite numbers"):
            paste_subject(_bg(), _subject(), x=x)
    assert paste_subject(_bg(), _subject(), x=np.int64(3), y=np.float32(2.5))[0].shape == _bg().shape


def test_input_rules_are_those_of_the_boundary():
    """The old paste code clipped floats outside 0..1 and read a 0/1 uint8 mask as 1/255; the documented
    rules of phnet.imageio win: the float is refused, the 0/1 mask is binary."""
    with pytest.raises(ValueError, match="0..1"):
        paste_subject(_bg(), _subject(), subject_mask=np.full((10, 8), 1.5, np.float32))
    with pytest.raises(ValueError, match="divide"):
        paste_subject(_bg() * 255, _subject())
    binary = np.zeros((10, 8), np.uint8)
    binary[:5] = 1
    _, mask = paste_subject(_bg(), _subject(), subject_mask=binary, x=0, y=0)
    assert mask.max() == 1.0 and mask_bbox(mask) == (0, 0, 8, 5)


def test_16bit_grey_background_is_not_white():
    grey = Image.fromarray(np.full((40, 60), 16384, np.uint16))  # a quarter of the 16-bit range
    comp, _ = paste_subject(grey, _subject(), x=0, y=0)
    np.testing.assert_allclose(comp[30, 50], 16384 / 65535, atol=1e-6)


@pytest.mark.parametrize("anchor, x, y", [("center", 20, 15), ("top-left", -50, -60), ("bottom-center", 33, 100)])
def test_a_subject_enlarged_past_the_background_costs_only_the_part_on_it(anchor, x, y):
    """Only the window on the background is enlarged (a 1000 px subject at scale 8 on 512² peaked at 4 GB);
    it is the window of the whole enlargement."""
    from phnet.compositing import _resize

    rng = np.random.default_rng(3)
    subject = rng.random((21, 17, 3)).astype(np.float32)
    alpha = (rng.random((21, 17)) > 0.2).astype(np.float32)
    background = rng.random((30, 40, 3)).astype(np.float32)
    comp, mask = paste_subject(background, subject, alpha, x=x, y=y, scale=6.0, anchor=anchor)
    big_rgb, big_alpha = _resize(subject, alpha, (126, 102))  # the whole enlargement, as smaller scales do
    fx, fy = {"center": (0.5, 0.5), "top-left": (0.0, 0.0), "bottom-center": (0.5, 1.0)}[anchor]
    left, top = int(np.floor(x - fx * 102 + 0.5)), int(np.floor(y - fy * 126 + 0.5))
    a = big_alpha[-top:-top + 30, -left:-left + 40] if top <= 0 and left <= 0 else None
    assert a is not None and a.shape == (30, 40)  # these placements cover the background
    want = background * (1 - a[..., None]) + big_rgb[-top:-top + 30, -left:-left + 40] * a[..., None]
    np.testing.assert_allclose(mask, a, atol=1e-5)
    np.testing.assert_allclose(comp, want, atol=1e-4)


def test_a_numpy_scale_is_a_scale():
    bg, sub = np.zeros((20, 20, 3), np.float32), np.ones((4, 4, 3), np.float32)
    a = paste_subject(bg, sub, x=2, y=2, scale=np.float32(2.0))
    b = paste_subject(bg, sub, x=2, y=2, scale=2.0)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_a_cut_out_is_told_from_a_composite_by_its_flat_background_on_a_grid_and_in_full():
    from phnet.compositing import cut_out_colour

    picture = np.full((600, 500, 4), 7, np.uint8)
    background = np.ones((600, 500), bool)
    background[100:500, 100:400] = False
    assert cut_out_colour(picture, background) == (7, 7, 7)
    picture[3, 3, 1] = 8  # one pixel off the grid: the full check sees it
    assert cut_out_colour(picture, background) is None
    assert cut_out_colour(np.random.default_rng(0).random((40, 40, 3)), np.ones((40, 40), bool)) is None
    assert cut_out_colour(np.zeros((40, 40, 3)), np.zeros((40, 40), bool)) is None  # no background at all


def test_a_subject_shrunk_to_one_pixel_wide_keeps_its_colours_down_its_length():
    """torch's antialiased kernel gave every row of a 1 px wide output the first row's value."""
    background = np.zeros((60, 60, 3), np.float32)
    subject = np.zeros((100, 3, 3), np.float32)
    subject[..., 0] = np.linspace(0, 1, 100)[:, None]
    composite, _ = paste_subject(background, subject, x=10, y=5, scale=0.4)
    column = composite[5:45, 10, 0]
    assert column[0] < 0.05 and 0.4 < column[20] < 0.6 and column[39] > 0.95


def test_a_sparse_subject_or_background_is_named_with_its_fix():
    """A sparse tensor ended in torch's 'aminmax ... SparseCPU backend'."""
    background, subject = torch.rand(32, 32, 3), torch.rand(8, 8, 3)
    with pytest.raises(ValueError, match=r"subject: a sparse tensor .*; pass subject.to_dense\(\)"):
        paste_subject(background, subject.to_sparse(), np.ones((8, 8), np.float32), x=4, y=4)
    with pytest.raises(ValueError, match=r"background: a sparse tensor .*; pass background.to_dense\(\)"):
        paste_subject(background.to_sparse(), subject, np.ones((8, 8), np.float32), x=4, y=4)


@pytest.mark.parametrize("given", ["alpha", "subject_mask"])
def test_an_almost_fully_transparent_subject_is_named_not_blamed_on_a_mask_s_scale(given):
    """A cut-out of alpha 2/255 was pasted, and harmonizing it was refused as a mask on the wrong scale."""
    background, subject = np.zeros((64, 64, 3), np.uint8), np.full((20, 20, 4), 200, np.uint8)
    subject[..., 3] = 2
    mask = subject[..., 3] if given == "subject_mask" else None
    what = "subject_mask value" if given == "subject_mask" else "alpha"
    with pytest.raises(ValueError, match=f"almost fully transparent \\(its strongest {what} is 2/255\\)"):
        paste_subject(background, subject if mask is None else subject[..., :3], mask, x=10, y=10)
    paste_subject(background, subject, x=10, y=10, allow_empty=True)  # a batch's item: the batch is judged


def test_a_composite_is_laid_over_an_rgba_background_as_a_straight_alpha_picture():
    """White at half coverage over black of alpha 0, 0.5 and 1: alpha 0.5, 0.75, 1 and the colour "over" gives."""
    from phnet.compositing import over_background

    white = np.ones((8, 8, 3), np.float32)
    for canvas_alpha, want_alpha in ((0.0, 0.5), (0.5, 0.75), (1.0, 1.0)):
        canvas = np.concatenate([np.zeros((8, 8, 3), np.float32), np.full((8, 8, 1), canvas_alpha, np.float32)], -1)
        comp, m = paste_subject(canvas, white, np.full((8, 8), 0.5, np.float32))
        out = over_background(torch.from_numpy(comp), torch.from_numpy(m), torch.from_numpy(canvas))
        torch.testing.assert_close(out[..., 3], torch.full((8, 8), want_alpha))
        torch.testing.assert_close(out[..., :3], torch.full((8, 8, 3), 0.5 / want_alpha))
    rgba = np.zeros((6, 6, 4), np.uint8)
    rgba[..., 1], rgba[..., 3] = 255, 128  # an 8-bit background, read on its own scale
    comp, m = paste_subject(rgba, white[:2, :2], x=1, y=1)
    out = over_background(torch.from_numpy(comp), torch.from_numpy(m), torch.from_numpy(rgba))
    assert torch.equal(out[0, 0], torch.tensor([0.0, 1.0, 0.0, 128 / 255]))  # untouched where no subject lands
    assert torch.equal(out[1, 1], torch.tensor([1.0, 1.0, 1.0, 1.0]))


def test_an_integer_past_any_float_as_a_place_or_scale_is_refused_by_name():
    """math.isfinite() of it raised OverflowError ('int too large to convert to float')."""
    background, subject = np.zeros((8, 8, 3), np.float32), np.ones((4, 4, 4), np.float32)
    with pytest.raises(ValueError, match="x and y must be finite numbers"):
        paste_subject(background, subject, x=2**2000)
    with pytest.raises(ValueError, match="scale must be a positive number"):
        paste_subject(background, subject, scale=2**2000)


# ---------------------------------------------------------------- a batch
def _batch(n, h, w, seed):
    return torch.rand(n, h, w, 3, generator=torch.Generator().manual_seed(seed))


def _square(h=12, w=10, value=1.0):
    m = torch.zeros(h, w)
    m[3:9, 2:8] = value
    return m


@pytest.mark.parametrize("backgrounds,subjects", [(1, 3), (3, 1), (3, 3), (1, 1)])
def test_a_batch_pairs_one_background_or_subject_with_each_of_the_other(backgrounds, subjects):
    from phnet.compositing import paste_batch

    bgs, subs = _batch(backgrounds, 20, 24, 0), _batch(subjects, 12, 10, 1)
    ticks = []
    comps, masks = paste_batch(bgs, subs, _square()[None], x=3, y=4, scale=1.5, anchor="center",
                               progress=lambda done, total: ticks.append((done, total)))
    n = max(backgrounds, subjects)
    assert comps.shape == (n, 20, 24, 3) and masks.shape == (n, 20, 24) and comps.dtype == torch.float32
    assert ticks == [(i + 1, n) for i in range(n)]
    for i in range(n):
        comp, mask = paste_subject(bgs[min(i, backgrounds - 1)], subs[min(i, subjects - 1)], _square(), x=3, y=4,
                                   scale=1.5, anchor="center")
        assert torch.equal(comps[i], torch.from_numpy(comp)) and torch.equal(masks[i], torch.from_numpy(mask))


def test_a_batch_whose_counts_do_not_pair_up_is_refused_before_anything_is_pasted():
    from phnet.compositing import BatchesDiffer, plan_paste

    with pytest.raises(BatchesDiffer, match="a batch of 2 backgrounds and 3 subjects") as refused:
        plan_paste(_batch(2, 20, 24, 0), _batch(3, 12, 10, 1))
    assert (refused.value.backgrounds, refused.value.subjects) == (2, 3)
    with pytest.raises(ValueError, match="3 masks for 2 images: give one subject_mask"):
        plan_paste(_batch(1, 20, 24, 0), _batch(2, 12, 10, 1), torch.stack([_square()] * 3))


def test_a_checked_batch_is_pasted_at_any_placement_and_one_that_misses_the_background_is_refused_then():
    from phnet.compositing import plan_paste

    batch = plan_paste(_batch(2, 20, 24, 0), _batch(1, 12, 10, 1), _square()[None])
    assert batch.count == 2
    left, _ = batch.paste(x=0, y=0)
    right, _ = batch.paste(x=12, y=6)
    assert not torch.equal(left, right)
    with pytest.raises(ValueError, match="lies entirely outside the 24x20 background"):
        batch.paste(x=500, y=500)


def test_each_subject_s_mask_is_its_own_and_one_mask_serves_them_all():
    from phnet.compositing import paste_batch

    bg, subs = _batch(1, 20, 24, 0), _batch(2, 12, 10, 1)
    other = torch.zeros(12, 10)
    other[0:4, 0:4] = 1
    _, masks = paste_batch(bg, subs, torch.stack([_square(), other]))
    assert torch.equal(masks[0, :12, :10], _square()) and torch.equal(masks[1, :12, :10], other)
    _, masks = paste_batch(bg, subs, _square())
    assert torch.equal(masks[0], masks[1])


def test_an_rgba_background_keeps_its_alpha_under_the_pasted_subjects():
    from phnet.compositing import over_background, paste_batch

    bg = torch.cat([_batch(2, 20, 24, 0), torch.full((2, 20, 24, 1), 0.5)], -1)
    comps, masks = paste_batch(bg, _batch(1, 12, 10, 1), _square()[None], x=2, y=2)
    assert comps.shape == (2, 20, 24, 4)
    comp, mask = paste_subject(bg[1], _batch(1, 12, 10, 1)[0], _square(), x=2, y=2)
    assert torch.equal(comps[1], over_background(torch.from_numpy(comp), torch.from_numpy(mask), bg[1]))
    assert float(comps[1, 0, 0, 3]) == 0.5 and float(comps[1, 6, 6, 3]) == 1.0


@pytest.mark.parametrize("masked", [False, True])
def test_a_batch_is_faint_only_where_every_subject_is(masked):
    """A clip's subject may fade out: one strong subject makes the batch's faint ones pictures it has left."""
    from phnet.compositing import FaintSubject, paste_batch

    subs = _batch(3, 12, 10, 1)
    faint = torch.stack([_square(value=0.004)] * 3)
    given = dict(subject_mask=faint) if masked else dict(subjects=torch.cat([subs, faint[..., None]], -1))
    given.setdefault("subjects", subs)
    with pytest.raises(FaintSubject) as refused:
        paste_batch(_batch(1, 20, 24, 0), **given)
    assert (refused.value.masked, refused.value.several, refused.value.whom) == (masked, True, "every subject")
    assert "almost fully transparent (the strongest" in str(refused.value)
    faint[1] = _square()
    key = "subject_mask" if masked else "subjects"
    given[key] = faint if masked else torch.cat([subs, faint[..., None]], -1)
    _, masks = paste_batch(_batch(1, 20, 24, 0), **given)
    assert float(masks[1].amax()) == 1.0


def test_an_8_bit_alpha_is_read_on_its_own_scale():
    from phnet.compositing import FaintSubject, plan_paste

    subject = torch.cat([torch.full((1, 12, 10, 3), 200, dtype=torch.uint8),
                         (_square() * 2).to(torch.uint8)[None, ..., None]], -1)
    with pytest.raises(FaintSubject, match=r"its strongest alpha is 2/255") as refused:
        plan_paste(_batch(1, 20, 24, 0), subject)
    assert (refused.value.masked, refused.value.several) == (False, False)


def test_one_cut_out_s_8_bit_alpha_meets_the_batch_s_rule_alone():
    """check_cut_outs is plan_paste's rule for a caller holding one picture's alpha (numpy, on its 8-bit scale)."""
    from phnet.compositing import AlphaLooksInverted, FaintSubject, TransparentSubject, check_cut_outs

    square = (_square().numpy() * 255).astype(np.uint8)
    check_cut_outs(square[None], 255)
    with pytest.raises(TransparentSubject):
        check_cut_outs(np.zeros((1, 12, 10), np.uint8), 255)
    with pytest.raises(FaintSubject, match=r"its strongest alpha is 2/255"):
        check_cut_outs((square // 255 * 2)[None], 255)
    with pytest.raises(AlphaLooksInverted, match=r"covers 70% of the picture and 100% of its border") as e:
        check_cut_outs((255 - square)[None], 255)
    assert (e.value.index, e.value.several, e.value.masked) == (0, False, False)
    check_cut_outs((255 - square)[None], 255, as_given=True)


def test_an_alpha_that_looks_inverted_is_refused_with_its_index_unless_it_is_as_given():
    from phnet.compositing import AlphaLooksInverted, paste_batch

    alphas = torch.stack([_square(), 1 - _square()])[..., None]
    subjects = torch.cat([_batch(2, 12, 10, 1), alphas], -1)
    with pytest.raises(AlphaLooksInverted, match=r"alpha \(subject 1 of the batch\) covers 70% of the picture") as e:
        paste_batch(_batch(1, 20, 24, 0), subjects)
    assert (e.value.index, e.value.several) == (1, True)
    _, masks = paste_batch(_batch(1, 20, 24, 0), subjects, alpha_as_given=True)
    assert torch.equal(masks[1, :12, :10], 1 - _square())


def test_a_subject_mask_that_looks_inverted_is_refused_as_an_alpha_is_and_a_large_subject_is_not():
    """A subject_mask 1 on the surroundings and 0 on the subject pasted the surroundings, as no alpha would be."""
    from phnet.compositing import AlphaLooksInverted, paste_batch

    subjects, background = _batch(2, 12, 10, 1), _batch(1, 20, 24, 0)
    masks = torch.stack([_square(), 1 - _square()])
    with pytest.raises(AlphaLooksInverted, match=r"^subject_mask \(subject 1 of the batch\) covers 70% of the picture "
                       r"and 100% of its border, so it looks inverted: 1 must mark the subject, 0 its surroundings; "
                       r"invert the mask, or pass alpha_as_given=True if it is right$") as e:
        paste_batch(background, subjects, masks)
    assert (e.value.index, e.value.several, e.value.masked) == (1, True, True)
    _, pasted = paste_batch(background, subjects, masks, alpha_as_given=True)
    assert torch.equal(pasted[1, :12, :10], 1 - _square())
    large = torch.ones(12, 10)
    large[:2, :2] = large[:2, -2:] = 0  # a face filling the frame but for its corners
    _, pasted = paste_batch(background, subjects[:1], large)
    assert torch.equal(pasted[0, :12, :10], large)


def test_a_batch_with_nothing_on_the_background_says_whether_the_alpha_is_empty_or_out_of_place():
    from phnet.compositing import TransparentSubject, paste_batch, plan_paste

    bg, subs = _batch(1, 20, 24, 0), _batch(2, 12, 10, 1)
    with pytest.raises(TransparentSubject, match="alpha is transparent everywhere"):
        paste_batch(bg, torch.cat([subs, torch.zeros(2, 12, 10, 1)], -1))
    with pytest.raises(TransparentSubject):  # known from the alpha alone: refused before anything is pasted
        plan_paste(bg, torch.cat([subs, torch.zeros(2, 12, 10, 1)], -1))
    corner = torch.zeros(12, 10)
    corner[:2, :2] = 1
    # the opaque corner lies off the background, the transparent rest on it
    with pytest.raises(ValueError, match=r"no opaque part .*transparent in subject_mask\)") as refused:
        paste_batch(bg, subs, corner[None], x=-5, y=-5)
    assert not isinstance(refused.value, TransparentSubject)
    # one picture of the batch with a subject on it is enough: the others are pictures the subject has left
    _, masks = paste_batch(bg, subs, torch.stack([corner, _square()]), x=-5, y=-5)
    assert not bool(masks[0].any()) and bool(masks[1].any())


def test_a_composite_over_a_coloured_half_transparent_background_is_the_over_of_both():
    """Over a coloured background (not black, where its share would vanish) of alpha 0.5, a red subject at a
    quarter coverage: alpha m + a(1 - m) and the colour of both, each weighed by its own coverage."""
    from phnet.compositing import over_background

    colour = torch.tensor([0.2, 0.4, 0.6])
    background = torch.cat([colour.expand(6, 6, 3), torch.full((6, 6, 1), 0.5)], -1)
    red = np.zeros((6, 6, 3), np.float32)
    red[..., 0] = 1
    comp, m = paste_subject(background, red, np.full((6, 6), 0.25, np.float32))
    out = over_background(torch.from_numpy(comp), torch.from_numpy(m), background)
    alpha = 0.25 + 0.5 * 0.75
    torch.testing.assert_close(out[..., 3], torch.full((6, 6), alpha))
    want = (torch.tensor([1.0, 0.0, 0.0]) * 0.25 + colour * 0.5 * 0.75) / alpha
    torch.testing.assert_close(out[..., :3], want.expand(6, 6, 3))


def test_a_16_bit_background_of_faint_alpha_is_as_it_was_where_no_subject_lands():
    """Undoing the composite over an alpha of 1/65535 would magnify float rounding 65535 times: where the mask is
    0 the background's own colour is kept, exactly."""
    from phnet.compositing import over_background

    pixels = np.zeros((8, 8, 4), np.uint16)
    pixels[...] = (40001, 12345, 65535, 1)
    comp, m = paste_subject(pixels, np.ones((2, 2, 3), np.float32), x=3, y=3)
    background = torch.from_numpy(pixels)
    out = over_background(torch.from_numpy(comp), torch.from_numpy(m), background)
    under = background.to(torch.float32) / 65535
    assert torch.equal(out[0, 0], under[0, 0]) and torch.equal(out[7, 7], under[7, 7])
    assert torch.equal(out[3, 3], torch.ones(4))


def _scene(shown_cols):
    """One 20x20 picture: a subject square in the middle, the alpha showing only columns ``shown_cols``
    (and the subject)."""
    subject = torch.zeros(1, 20, 20)
    subject[0, 8:12, 8:12] = 1
    alpha = torch.zeros(1, 20, 20)
    alpha[0, :, shown_cols] = 1
    alpha[0, 8:12, 8:12] = 1
    return alpha, subject


def test_the_visible_scene_is_what_the_alpha_shows_when_enough_of_it_shows_within_the_reference():
    from phnet.compositing import visible_scene

    alpha, subject = _scene(slice(10, 20))  # the right half shows: 200 px, far over 3% of the picture
    (reference, peak), narrowed = visible_scene(alpha, subject)
    assert narrowed == [True] and peak == 1.0
    assert torch.equal(reference.bool(), alpha.bool())
    alpha, subject = _scene(slice(19, 20))  # one column of 20 px shows beside the subject: over 12 px
    assert visible_scene(alpha, subject) is not None
    alpha[0, 10:, 19] = 0  # 10 px of visible scene: under 3% of 400
    assert visible_scene(alpha, subject) is None
    alpha, subject = _scene(slice(10, 20))
    left = torch.zeros(1, 20, 20)
    left[0, :, :5] = 1  # the reference region lies wholly in the hidden part: nothing of it to narrow to
    assert visible_scene(alpha, subject, (left, 1.0)) is None
    right = torch.zeros(1, 20, 20)
    right[0, :, 15:] = 1
    (reference, _), narrowed = visible_scene(alpha, subject, (right, 1.0))
    assert narrowed == [True] and torch.equal(reference, right)


def test_a_plan_made_with_its_defaults_refuses_an_inverted_alpha_and_pastes_at_the_top_left():
    from phnet.compositing import AlphaLooksInverted, plan_paste

    subjects = torch.cat([_batch(1, 12, 10, 1), (1 - _square())[None, ..., None]], -1)
    with pytest.raises(AlphaLooksInverted):
        plan_paste(_batch(1, 20, 24, 0), subjects)
    _, masks = plan_paste(_batch(1, 20, 24, 0), _batch(1, 12, 10, 1), _square()[None]).paste()
    assert torch.equal(masks[0, :12, :10], _square()) and not bool(masks[0, 12:].any())


def _half_hidden(h=40, w=56, dtype=np.uint8):
    """An RGBA composite whose right quarter is transparent, black under it (a background with a hole), and its
    subject's mask."""
    peak = np.iinfo(dtype).max
    rgb = photo(h, w, seed=4).astype(np.float64) / 255
    alpha = np.ones((h, w))
    alpha[:, 3 * w // 4 :] = 0
    rgba = np.concatenate([rgb * alpha[..., None], alpha[..., None]], -1)
    return np.round(rgba * peak).astype(dtype), subject_mask(h, w)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_the_transparent_part_of_an_rgba_composite_is_not_matched(harmonizer, caplog, dtype):
    """What lies under an RGBA composite's alpha 0 (black, mostly) is seen by nobody: the subject is matched to the
    visible background, as with that as the reference mask, and the report says so (the CLI, the API and the
    WebUI matched it to the black too; only the ComfyUI node left it out)."""
    import logging

    rgba, mask = _half_hidden(dtype=dtype)
    shown = rgba[..., 3] > 0
    with caplog.at_level(logging.INFO, logger="phnet"):
        out, (c,) = harmonizer.harmonize(rgba, mask, threshold=0)
    seen = harmonizer(np.ascontiguousarray(rgba[..., :3]), mask, threshold=0, reference_mask=shown)
    everything = harmonizer(np.ascontiguousarray(rgba[..., :3]), mask, threshold=0)
    assert np.array_equal(out[..., :3], seen) and not np.array_equal(seen, everything)
    assert np.array_equal(out[..., 3], rgba[..., 3]) and out.dtype == dtype
    assert c.describe().endswith("; the transparent part was left out of the scene to match")
    assert caplog.records[-1].levelname == "INFO"  # nothing was ignored: no warning
    # within a reference mask; in a batch, only the pictures with a hidden part outside the subject
    region = np.zeros(mask.shape, bool)
    region[:, :10] = region[:, 46:] = True
    both = harmonizer(rgba, mask, threshold=0, reference_mask=region)
    own = harmonizer(np.ascontiguousarray(rgba[..., :3]), mask, threshold=0, reference_mask=region & shown)
    assert np.array_equal(both[..., :3], own)
    opaque = rgba.copy()
    opaque[..., 3] = np.iinfo(dtype).max
    batch, corrections = harmonizer.harmonize(np.stack([rgba, opaque]), mask, threshold=0)
    assert np.array_equal(batch[0], out) and np.array_equal(batch[1], harmonizer(opaque, mask, threshold=0))
    assert summary(corrections).endswith("; 1 of 2: the transparent part was left out of the scene to match")


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_the_transparent_part_is_not_matched_beside_a_weak_subject_on_a_mattes_floor(harmonizer, dtype):
    """Beside a subject of 48/255, 1/64 of its strongest value is under one 8-bit level: a matte's floor of 1/255
    counted as subject everywhere, no background was left to narrow, and the subject was matched to the black
    under the composite's transparent part."""
    rgba, mask = _half_hidden()
    out = []
    for floor in (0, 1):
        weak = np.where(mask > 0, 48, floor).astype(np.uint8)
        weak = weak if dtype == np.uint8 else weak / np.float32(255)
        result, (c,) = harmonizer.harmonize(rgba, weak, threshold=0)
        assert c.describe().endswith("; the transparent part was left out of the scene to match"), floor
        out.append(result)
    assert np.array_equal(out[1], out[0])


def test_a_converted_rgba_composite_leaves_its_transparent_part_out_as_a_native_one(harmonizer):
    """A picture converted before the work (PIL LA) takes the same rule."""
    rgba, mask = _half_hidden()
    grey = Image.fromarray(rgba).convert("LA")
    out, (c,) = harmonizer.harmonize(grey, mask, threshold=0)
    assert np.array_equal(np.asarray(out), np.asarray(harmonizer(grey.convert("RGBA"), mask, threshold=0)))
    assert "transparent part was left out" in c.describe()


def test_a_cut_out_whose_alpha_is_its_subject_is_judged_as_before(harmonizer):
    """An RGBA cut-out (alpha = the subject) shows no scene: it is not narrowed, and is left as it was for its one
    flat colour."""
    rgb = photo(40, 56)
    mask = subject_mask(40, 56)
    cut = np.concatenate([rgb * (mask[..., None] > 0), (mask[..., None] * 255)], -1).astype(np.uint8)
    out, (c,) = harmonizer.harmonize(cut, mask)
    assert np.array_equal(out, cut) and c.flat == (0, 0, 0) and "left out of the scene" not in c.describe()
