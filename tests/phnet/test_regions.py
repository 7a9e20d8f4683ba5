"""phnet.regions: the subject, the reference region and a flat background, read at the working size."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from phnet.regions import flat_colours, mixed_from_one_colour, off_canvas, reference_pixels, tail_on_one_colour
from tests.helpers.pictures import photo


def _picture(background, size=24):
    """1x3xHxW: a background with a red subject square in the middle, and the subject's 1x1xHxW mask."""
    image = torch.tensor(background, dtype=torch.float32)[None, :, None, None].expand(1, 3, size, size).clone()
    mask = torch.zeros(1, 1, size, size)
    mask[..., 8:16, 8:16] = 1
    image[:, :, 8:16, 8:16] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]
    return image, mask


def test_a_background_of_one_colour_is_named_and_a_scene_is_not_in_a_batch():
    grey, mask = _picture((0.3, 0.4, 0.5))
    scene = grey.clone()
    scene[:, :, :4] = 0.9  # a sky above the same grey: two colours
    colours = flat_colours(torch.cat([grey, scene]), torch.cat([mask, mask]))
    assert colours.shape == (2, 3)
    torch.testing.assert_close(colours[0], torch.tensor([0.3, 0.4, 0.5]))
    assert colours[1].isnan().all()


def test_off_canvas_is_each_pixel_s_distance_from_the_untouched_colour():
    image, mask = _picture((0.2, 0.2, 0.2))
    off = off_canvas(image, mask < 0.5)
    assert off.shape == (1, 1, 24, 24)
    assert float(off[0, 0, 0, 0]) == 0.0
    torch.testing.assert_close(off[0, 0, 10, 10], torch.tensor(0.8))  # red's largest difference from grey


def test_a_feathered_cut_out_on_its_canvas_is_one_colour_mixed_by_the_coverage():
    image, mask = _picture((0.2, 0.2, 0.2))
    coverage = mask / 2  # the subject, from half
    ring = torch.zeros_like(mask, dtype=torch.bool)
    ring[..., 6:18, 6:18] = True
    ring[..., 8:16, 8:16] = False
    coverage[ring] = 0.3  # a feather: 0.3 of the subject mixed into the canvas there
    image = torch.where(ring, 0.3 * torch.tensor([1.0, 0.0, 0.0])[:, None, None] + 0.7 * 0.2, image)
    off = off_canvas(image, coverage == 0)
    assert bool(mixed_from_one_colour(off, coverage))
    scene = image.clone()
    scene[..., 0, :] = 0.9  # a scene beyond the feather
    assert not bool(mixed_from_one_colour(off_canvas(scene, coverage == 0), coverage))


def test_a_tail_off_the_canvas_colour_is_a_rim_under_0_7_of_the_subject_s_area():
    coverage = torch.zeros(1, 1, 20, 20)
    coverage[..., :10, :10] = 0.5  # the subject, from half: 100 pixels
    coverage[..., 10:, :10] = 0.2  # its tail: 100 pixels
    off = torch.zeros_like(coverage)
    off[..., 10:16, :10] = 0.5  # 60 of the tail's pixels far from the canvas colour: a rim
    assert bool(tail_on_one_colour(off, coverage))
    off[..., 10:18, :10] = 0.5  # 80: a scene
    assert not bool(tail_on_one_colour(off, coverage))
    off[..., 10:17, :10] = 0.5  # 70: 0.7 of the subject's area is no longer a rim
    off[..., 17:, :] = 0
    assert not bool(tail_on_one_colour(off, coverage))


def test_a_reference_mask_of_any_kind_the_boundary_reads_is_its_region():
    region = np.zeros((6, 8), np.uint8)
    region[:, :3] = 255
    for given in (Image.fromarray(region).convert("RGB"), region):
        pixels, peak = reference_pixels(given, (1, 6, 8))
        assert torch.equal(pixels.float() / peak, torch.from_numpy(region / 255.0).float()[None])


def _subject():
    subject = torch.zeros(16, 16)
    subject[4:12, 4:12] = 1
    return subject


def test_a_reference_region_s_strength_is_read_where_no_trace_of_the_subject_is():
    """A region painted at 0.4 over the scene and at full strength over a matte's floor of 1/255 beside the
    subject: its strength is 0.4, so the soft part is the region too."""
    from phnet.regions import reference_at

    subject = _subject()
    subject[:, 12:] = 1 / 255
    reference = torch.zeros(16, 16)
    reference[:, :2], reference[:, 13:] = 0.4, 1.0
    region = reference_at(reference, (16, 16), subject)
    assert torch.equal(region[0, 0].bool(), reference > 0)


def test_a_reference_region_only_in_the_subject_s_feather_is_kept():
    from phnet.regions import reference_at

    subject = _subject()
    ring = torch.zeros(16, 16, dtype=torch.bool)
    ring[2:14, 2:14] = True
    ring[4:12, 4:12] = False
    subject[ring] = 0.3  # a feather, under half: background to the network
    region = reference_at(ring.float(), (16, 16), subject)
    assert torch.equal(region[0, 0].bool(), ring)


@pytest.mark.parametrize("clip", [False, True])
def test_a_cut_out_with_a_feathered_edge_is_seen_to_have_no_scene(harmonizer, clip):
    """A feather mixes the subject into pixels well outside its binary mask: read there, the transparent part's
    black was not one colour, and the subject was matched to black."""
    h = w = 256
    yy, xx = np.mgrid[:h, :w]
    outside = np.maximum(np.maximum(64 - yy, yy - 192), np.maximum(80 - xx, xx - 176)).clip(0)
    feather = (1 - outside / 24).clip(0, 1).astype(np.float32)  # 1 on the subject, to 0 over 24 px
    cut = (photo(h, w) * feather[..., None]).round().astype(np.uint8)
    mask = (feather * 255).round().astype(np.uint8)
    frames = np.stack([cut, photo(h, w, seed=1)])
    result = harmonizer.harmonize(frames, np.stack([mask, mask]), threshold=0.0, working_size=64,
                                  temporal=0 if clip else None)
    assert [c.flat for c in result.corrections] == [(0, 0, 0), None]
    assert np.array_equal(result.image[0], cut) and not np.array_equal(result.image[1], frames[1])


def test_a_large_feathered_cut_out_filling_most_of_its_canvas_is_seen_to_have_no_scene(harmonizer):
    from phnet.mask_tools import refine_mask

    yy, xx = np.mgrid[:256, :256]
    alpha = refine_mask((((yy - 128) ** 2 + (xx - 128) ** 2) <= 90**2).astype(np.float32), feather=8)
    cut = np.clip(photo(256, 256).astype(np.float32) * alpha[..., None], 0, 255).astype(np.uint8)
    result = harmonizer.harmonize(cut, alpha, threshold=0.0, working_size=128)
    assert result.corrections[0].flat == (0, 0, 0) and np.array_equal(result.image, cut)


@pytest.mark.parametrize("feathered", [False, True])
def test_a_cut_out_whose_mask_the_host_feathered_or_shrank_is_seen_to_have_no_scene(harmonizer, feathered):
    """A mask feathered or shrunk past the cut-out's own edge mixes no more like the edge itself: the cut-out was
    then harmonized toward its white canvas."""
    from phnet.mask_tools import refine_mask

    yy, xx = np.mgrid[:256, :256]
    disc = ((((yy - 128) ** 2 + (xx - 128) ** 2) <= 60**2) | ((abs(xx - 40) <= 1) & (yy > 40) & (yy < 220))
            | ((xx > 40) & (xx < 128) & (abs(yy - 128) <= 1))).astype(np.float32)  # with thin limbs
    if feathered:  # a feathered cut-out, its mask shrunk by 3 px
        alpha = refine_mask(disc, feather=8)
        cut = (photo(256, 256) * alpha[..., None] + 255 * (1 - alpha[..., None])).round().astype(np.uint8)
        mask = refine_mask(alpha, grow=-3)
    else:  # a hard cut-out, its mask feathered
        cut = np.where(disc[..., None] > 0, photo(256, 256), 255).astype(np.uint8)
        mask = refine_mask(disc, feather=6)
    result = harmonizer.harmonize(cut, mask, threshold=0.0, working_size=128)
    assert result.corrections[0].flat == (255, 255, 255) and np.array_equal(result.image, cut)


@pytest.mark.parametrize("grow, feather", [(-6, 3), (-8, 4), (0, 4), (-20, 10)])
def test_a_hard_cut_out_whose_mask_was_shrunk_and_feathered_is_seen_to_have_no_scene(harmonizer, grow, feather):
    """As a SAM node's grow < 0 and feather leave it: the tail lies half on the subject, half on the canvas."""
    from phnet.mask_tools import refine_mask

    yy, xx = np.mgrid[:1024, :1024]
    disc = (((yy - 512) ** 2 + (xx - 420) ** 2) <= 300**2).astype(np.float32)
    cut = np.where(disc[..., None] > 0, photo(1024, 1024), 255).astype(np.uint8)
    result = harmonizer.harmonize(cut, refine_mask(disc, grow=grow, feather=feather), threshold=0.0,
                                  working_size=512)
    assert result.corrections[0].flat == (255, 255, 255)


@pytest.mark.parametrize("feather", [40, 60, 70])
def test_a_wide_feather_over_a_pillarboxed_scene_is_no_cut_out(harmonizer, feather):
    """A 9:16 clip in a 16:9 frame: the black bars are most of what a wide feather's tail leaves untouched, and
    were read alone as 'one flat colour' (0, 0, 0): the subject was left as it was."""
    from phnet.mask_tools import refine_mask

    h, w = 540, 960
    left, right = (w - 304) // 2, (w + 304) // 2
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(0)
    scene = np.stack([60 + 120 * xx / w, 80 + 100 * yy / h, 140 + 50 * np.sin(xx / 9)], -1)
    scene = np.clip(scene + rng.normal(0, 8, (h, w, 3)), 0, 255)
    scene[:, :left] = scene[:, right:] = 0
    mask = np.zeros((h, w), np.float32)
    mask[40:, left + 70 : right - 70] = 1
    mask = refine_mask(mask, feather=feather)
    scene[mask >= 0.5] = scene[mask >= 0.5] * 0.4 + np.array([200, 40, 40]) * 0.6
    result = harmonizer.harmonize(scene.astype(np.uint8), mask, threshold=0.0)
    assert result.corrections[0].flat is None


def test_a_wide_feather_over_a_real_scene_with_a_white_sky_is_no_cut_out(harmonizer):
    """Its faint tail reaches the whole scene but the sky: read there alone, the background was 'one flat colour'
    and the subject was left as it was."""
    from phnet.mask_tools import gaussian_blur

    h, w = 180, 320
    scene = photo(h, w)
    scene[: int(h * 0.3)] = 255  # a blown-out sky
    yy, xx = np.mgrid[:h, :w]
    subject = ((((xx - w / 2) / 200) ** 2 + ((yy - h) / 100) ** 2) < 1).astype(np.float32)  # wall to wall
    feathered = np.maximum(gaussian_blur(subject, 15), subject)  # reaches 45 px: the top of the sky is untouched
    result = harmonizer.harmonize(scene, feathered, threshold=0.0, working_size=128)
    assert result.corrections[0].flat is None and not np.array_equal(result.image, scene)
