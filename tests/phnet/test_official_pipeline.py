"""Mode "official" step by step (phnet.official_pipeline): the picture as the official tester reads it."""

from PIL import Image

from phnet.official_pipeline import as_official_tester_reads
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
