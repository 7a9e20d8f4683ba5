"""phnet.regions: the subject, the reference region and a flat background, read at the working size."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from phnet.regions import flat_colours, mixed_from_one_colour, off_canvas, reference_pixels, tail_on_one_colour


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
