"""Mode "official" step by step (phnet.official_pipeline): the picture as the official tester reads it."""

import numpy as np
import torch
from PIL import Image

from phnet.official_pipeline import as_official_tester_reads, dithered
from tests.helpers.pictures import photo, subject_mask


def test_a_palette_picture_is_read_as_rgb_and_with_transparency_as_rgba(harmonizer):
    """The tester's convert("RGB"): a palette picture gains an alpha channel only where it has transparency."""
    palette = Image.fromarray(photo(48, 64)).convert("P")
    assert as_official_tester_reads(palette).mode == "RGB"
    assert harmonizer(palette, subject_mask(48, 64), mode="official", threshold=0).mode == "RGB"
    palette.info["transparency"] = 0
    assert as_official_tester_reads(palette).mode == "RGBA"
    assert as_official_tester_reads(Image.new("LA", (8, 8))).mode == "RGBA"
    assert as_official_tester_reads(Image.new("CMYK", (8, 8))).mode == "RGB"


def test_a_soft_mask_is_dithered_from_its_nearest_8_bit_levels_as_the_tester_reads_it():
    """A float mask's values are rounded to 8-bit levels before PIL's Floyd-Steinberg, not cut down to them:
    a mask at 76.7/255 is read as level 77."""
    levels = np.arange(255, dtype=np.uint8).repeat(16).reshape(60, 68)
    mask = torch.from_numpy((levels.astype(np.float32) + 0.7) / 255)[None, None]
    expected = np.asarray(Image.fromarray(levels + 1).convert("1"), dtype=np.float32)
    assert np.array_equal(dithered(mask)[0, 0].numpy(), expected)
