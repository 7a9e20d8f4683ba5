"""The WebUI's inpaint mask as the subject, read by the WebUI's rules: resize, only masked, the blur band, the
overlay."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.webui.harness import (INPAINT, SUBJECT, _args, _changed_only_inside, _fails, _generated, _postprocess,
                                 _runner, _subject)


def test_img2img_inpaint_mask_is_harmonized(webui):
    script, runner = _runner(webui, True)
    mask = np.zeros((48, 64), np.uint8)
    mask[10:40, 20:50] = 255
    p = webui.processing.StableDiffusionProcessingImg2Img(
        width=64, height=48, init_images=[_generated(seed=1)], mask=Image.fromarray(mask), inpaint_full_res=False
    )
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", strength=0.8,
                          mask_source=INPAINT)  # fmt: skip
    before = _generated()
    after = _postprocess(webui, runner, p, before)
    _changed_only_inside(before, after, mask / 255.0)
    assert p.extra_generation_params["PHNet weights"] == "tiny-phnet"
    assert p.extra_generation_params["PHNet strength"] == 0.8
    assert p.extra_generation_params["PHNet mask"] == INPAINT
    assert p.extra_generation_params["PHNet result"].startswith("changed by RMS")


def test_inpaint_mask_follows_the_webui_rules(webui):
    inpaint_mask = webui.script_module.inpaint_mask
    img2img = webui.processing.StableDiffusionProcessingImg2Img
    full = np.zeros((128, 128), np.uint8)
    full[40:72, 40:72] = 255
    # "Inpaint only masked": pp.image is the crop p.paste_to = (x, y, w, h), resized to width x height
    p = img2img(width=64, height=64, mask=Image.fromarray(full), inpaint_full_res=True)
    p.paste_to = (32, 32, 64, 64)
    expected = np.zeros((64, 64), np.uint8)
    expected[8:40, 8:40] = 255
    np.testing.assert_array_equal(np.asarray(inpaint_mask(p, (64, 64))), expected)
    # "Whole picture" ignores paste_to; "Inpaint not masked" inverts
    p = img2img(width=128, height=128, mask=Image.fromarray(full), inpaint_full_res=False, inpainting_mask_invert=1)
    p.paste_to = (32, 32, 64, 64)
    np.testing.assert_array_equal(np.asarray(inpaint_mask(p, (128, 128))), 255 - full)
    # no mask at all (txt2img, or img2img without inpainting)
    with pytest.raises(ValueError, match="needs img2img inpainting"):
        inpaint_mask(img2img(width=64, height=64), (64, 64))


@pytest.mark.parametrize("resize_mode, box", [(0, (16, 48, 16, 32)), (1, (16, 48, 0, 32)), (2, (24, 40, 16, 32))])
def test_a_whole_picture_mask_is_resized_as_the_webui_resizes_it(webui, resize_mode, box):
    """A wide 128x64 mask for a 64x64 output: "Crop and resize" keeps its middle and "Resize and fill" pads it,
    as the WebUI does to the mask it pastes the original back through; a plain stretch put the subject's mask
    off its place (IoU 0.5)."""
    wide = np.zeros((64, 128), np.uint8)
    wide[16:48, 32:64] = 255  # the subject: rows 16..47, columns 32..63
    p = webui.processing.StableDiffusionProcessingImg2Img(width=64, height=64, mask=Image.fromarray(wide),
                                                          inpaint_full_res=False, resize_mode=resize_mode)
    got = np.asarray(webui.script_module.inpaint_mask(p, (64, 64))) > 127
    rows, columns = np.flatnonzero(got.any(axis=1)), np.flatnonzero(got.any(axis=0))
    assert (rows[0], rows[-1] + 1, columns[0], columns[-1] + 1) == box


def test_an_only_masked_crop_held_by_the_picture_border_is_fitted_as_the_webui_fits_it(webui):
    """Where the WebUI's crop meets the border it keeps the picture's aspect, not the output's: the WebUI fits
    it into the output and pads it (resize mode 2); stretched, a tall subject's mask lay beside it (IoU 0.72)."""
    from modules import images

    full = np.zeros((96, 64), np.uint8)
    full[8:88, 4:20] = 255  # a tall subject near the left edge of a portrait picture
    p = webui.processing.StableDiffusionProcessingImg2Img(width=64, height=64, mask=Image.fromarray(full),
                                                          inpaint_full_res=True)
    p.paste_to = (0, 0, 64, 96)  # the whole picture: its border held the crop
    expected = np.asarray(images.resize_image(2, Image.fromarray(full), 64, 64).convert("L")) > 127
    got = np.asarray(webui.script_module.inpaint_mask(p, (64, 64))) > 127
    np.testing.assert_array_equal(got, expected)


def test_inpaint_only_masked_is_harmonized_inside_the_crop(webui):
    full = np.zeros((128, 128), np.uint8)
    full[40:72, 40:72] = 255
    expected = np.zeros((64, 64), np.uint8)
    expected[8:40, 8:40] = 255
    script, runner = _runner(webui, True)
    p = webui.processing.StableDiffusionProcessingImg2Img(
        width=64, height=64, mask=Image.fromarray(full), inpaint_full_res=True
    )
    p.paste_to = (32, 32, 64, 64)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=INPAINT)
    before = _generated(64, 64)
    _changed_only_inside(before, _postprocess(webui, runner, p, before), expected / 255.0)


@pytest.mark.parametrize("only_masked", [False, True])
def test_the_blur_band_the_webui_shows_generated_pixels_in_is_harmonized_too(webui, only_masked):
    """The WebUI pastes the original back through the painted mask blurred and widened (mask_for_overlay):
    generated pixels in that band were left uncorrected around the corrected subject, a seam."""
    from PIL import ImageFilter

    full = np.zeros((128, 128), np.uint8)
    full[48:80, 48:80] = 255
    overlay = Image.fromarray(full).filter(ImageFilter.GaussianBlur(4))  # as A1111 blurs by "Mask blur" 4
    script, runner = _runner(webui, True)
    if only_masked:  # the init picture's size, the crop fitted into the generated 64×64
        p = webui.processing.StableDiffusionProcessingImg2Img(width=64, height=64, mask=Image.fromarray(full),
                                                              inpaint_full_res=True)
        p.paste_to, p.mask_for_overlay = (32, 32, 64, 64), overlay
        reach = np.asarray(overlay)[32:96, 32:96] > 0
        reach = np.asarray(Image.fromarray(reach.astype(np.uint8) * 255).resize((64, 64))) > 0
    else:  # the generated size, doubled and clipped
        p = webui.processing.StableDiffusionProcessingImg2Img(width=128, height=128, mask=Image.fromarray(full),
                                                              inpaint_full_res=False)
        p.mask_for_overlay = Image.fromarray(np.clip(np.asarray(overlay).astype(int) * 2, 0, 255).astype(np.uint8))
        reach = np.asarray(p.mask_for_overlay) > 0
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=INPAINT)
    before = _generated(p.width, p.height)
    after = np.asarray(_postprocess(webui, runner, p, before)).astype(int)
    changed = np.abs(after - np.asarray(before).astype(int)).max(-1) > 0
    painted = np.asarray(webui.script_module.inpaint_mask(p, (p.width, p.height))) > 0
    band = reach & ~painted
    assert band.sum() > 50 and changed[band].mean() > 0.9  # the band is corrected with the subject
    assert not changed[~reach].any()
    # the correction is the painted mask's: with the band inside the mask, its background colours made the
    # subject look matched already (a correction of 29 fell to 3)
    with_band = str(p.extra_generation_params["PHNet result"])
    p.mask_for_overlay = None
    alone = np.asarray(_postprocess(webui, runner, p, before)).astype(int)
    assert str(p.extra_generation_params["PHNet result"]) == with_band
    np.testing.assert_array_equal(alone[painted], after[painted])


def _carried(webui, before, after, mask, reach) -> np.ndarray:
    """carry_into_band on float H×W×3 pictures (0..255), an H×W mask in 0..1 and an H×W 0/255 reach."""
    return np.asarray(webui.script_module.carry_into_band(Image.fromarray(before.astype(np.uint8)),
                                                          Image.fromarray(after.astype(np.uint8)), mask,
                                                          Image.fromarray(reach))).astype(float)


def test_the_fit_carried_into_the_band_reads_the_whole_subject_also_where_it_passes_the_reach(webui):
    """A mask grown past the overlay's reach: its columns beyond the reach are still the subject's, read by the fit
    (the box around reach and subject lost the subject's last column under a hand-made mutant the suite let pass).
    Reaching over that column too, where it is all subject and so no band, carries the same change."""
    rows, cols = np.mgrid[0:40, 0:40]
    before = np.stack([60 + 3 * cols, 80 + 2 * rows, 100 + cols + rows], -1).astype(float)
    mask = ((rows >= 10) & (rows < 30) & (cols >= 10) & (cols <= 20)).astype(np.float32)
    after = before.copy()
    after[mask > 0] = before[mask > 0] * 1.1 + 3
    after[(mask > 0) & (cols == 20)] = before[(mask > 0) & (cols == 20)] + 40  # the column past the reach
    reach = np.where((rows >= 5) & (rows < 35) & (cols >= 5) & (cols < 20), 255, 0).astype(np.uint8)
    over = np.maximum(reach, (mask * 255).astype(np.uint8))
    short, whole = _carried(webui, before, after, mask, reach), _carried(webui, before, after, mask, over)
    assert (short != before).any()
    np.testing.assert_array_equal(short, whole)


def test_a_nearly_flat_subject_carries_its_mean_shift_into_the_band_not_a_gain_read_from_rounding(webui):
    """A subject of two neighbouring levels (a spread of a quarter level²) says nothing of a gain: its change is
    carried as the mean shift (a gain read from it fell to the floor and left a bright band as it was, under a
    hand-made mutant the suite let pass)."""
    cols = np.arange(40)
    mask = np.repeat((cols < 20).astype(np.float32)[None, :], 20, 0)
    before = np.full((20, 40, 3), 200.0)
    before[:, :20] = np.where(np.arange(20) % 2, 101.0, 100.0)[None, :, None]
    after = before.copy()
    after[:, :20] = np.where(before[:, :20] == 100, 112.0, 110.0)  # +12 and +9: a mean shift of 10.5
    reach = np.repeat(np.where(cols < 30, 255, 0)[None, :], 20, 0).astype(np.uint8)
    band = _carried(webui, before, after, mask, reach)[:, 20:30] - 200
    assert band.min() >= 10 and band.max() <= 11


@pytest.mark.parametrize("level, shift", [(235, 40), (25, -30)])
def test_a_subject_that_clips_carries_its_shift_into_the_band_not_its_clipped_colour(webui, level, shift):
    """A white shirt brightened stays 255: read as part of the map, its gain fell to 0 and the band around the
    subject was painted white (a dark one black)."""
    rng = np.random.default_rng(0)
    before = np.full((40, 40, 3), (90, 110, 130), np.float32) + rng.normal(0, 3, (40, 40, 3))
    mask = np.zeros((40, 40), np.float32)
    mask[10:30, 10:30] = 1
    before[10:30, 10:30] = level + rng.normal(0, 6, (20, 20, 3))
    before = before.clip(0, 255).round()
    after = before.copy()
    after[10:30, 10:30] = (before[10:30, 10:30] + shift).clip(0, 255)
    reach = np.zeros((40, 40), np.uint8)
    reach[5:35, 5:35] = 255
    carried = _carried(webui, before, after, mask, reach)
    ring = (reach > 0) & (mask == 0)
    carried_shift = (carried - before)[ring].mean(0) / shift  # where the subject clips, what it shows of the shift
    assert ((carried_shift > 0.4) & (carried_shift < 1.1)).all(), carried_shift


def test_the_band_changes_no_more_than_the_subject_did(webui):
    """The subject's gain was carried to the band's colours, far outside the subject's range: a dark subject
    brightened by 12 levels raised the bright background around it by 55 (93 % of it to 255)."""
    rng = np.random.default_rng(0)
    before = np.full((40, 40, 3), 200, np.float32) + rng.normal(0, 3, (40, 40, 3))
    mask = np.zeros((40, 40), np.float32)
    mask[10:30, 10:30] = 1
    before[10:30, 10:30] = rng.uniform(20, 60, (20, 20, 3))
    before = before.clip(0, 255).round()
    after = before.copy()
    after[10:30, 10:30] = (before[10:30, 10:30] * 1.3).round()
    reach = np.zeros((40, 40), np.uint8)
    reach[5:35, 5:35] = 255
    carried = _carried(webui, before, after, mask, reach)
    ring = (reach > 0) & (mask == 0)
    largest = (after - before)[mask > 0].max()
    assert 0 < (carried - before)[ring].max() <= largest
    # a bright subject darkened by a gain changed by -54 to -72: the bound is no least change, and a dark band
    # (30) is not pushed to black
    bright = np.full((40, 40, 3), 30.0)
    bright[10:30, 10:30] = rng.uniform(180, 240, (20, 20, 3)).round()
    darkened = bright.copy()
    darkened[10:30, 10:30] = (bright[10:30, 10:30] * 0.7).round()
    carried = _carried(webui, bright, darkened, mask, reach)
    assert -15 < (carried - bright)[ring].mean() < 0


@pytest.mark.parametrize("reach_rows", [slice(14, 70), slice(30, 70)])  # around the subject, or leaving its top out
def test_the_band_is_carried_into_as_it_would_be_on_the_box_alone(webui, reach_rows):
    """The band is worked on in the box around it and the subject alone: a wide margin of other pixels around the
    picture changes nothing inside it, and is left as it was."""
    from PIL import ImageFilter

    rng = np.random.default_rng(3)
    before = rng.integers(0, 256, (80, 96, 3), np.uint8)
    full = np.zeros((80, 96), np.uint8)
    full[20:60, 30:70] = 255
    mask = np.asarray(Image.fromarray(full).filter(ImageFilter.GaussianBlur(3)), np.float32) / 255
    after = before.copy()
    after[mask > 0] = np.clip(before[mask > 0] * 1.2 - 10 + rng.normal(0, 4, ((mask > 0).sum(), 3)), 0, 255)
    reach = np.zeros((80, 96), np.uint8)
    reach[reach_rows, 22:78] = 255

    def carried(margin):
        pad = ((margin, margin), (margin, margin))
        picture = np.pad(before, (*pad, (0, 0)), mode="reflect")
        result = picture.copy()
        result[margin:margin + 80, margin:margin + 96] = after
        out = webui.script_module.carry_into_band(Image.fromarray(picture), Image.fromarray(result),
                                                  np.pad(mask, pad), Image.fromarray(np.pad(reach, pad)))
        out = np.asarray(out)
        outside = np.ones(out.shape[:2], bool)
        outside[margin:margin + 80, margin:margin + 96] = False
        np.testing.assert_array_equal(out[outside], picture[outside])
        return out[margin:margin + 80, margin:margin + 96]

    inside = carried(0)
    np.testing.assert_array_equal(carried(40), inside)
    assert (inside != after).any()


def test_a_feathered_edge_under_the_band_keeps_the_subject_s_share_of_its_change(webui):
    """Where the mask is soft and the band overlaps it, the pixel was drawn from its harmonized value toward the
    carried one: at m = 0.5 a quarter of the subject's change was taken back, a less harmonized stripe."""
    cols = np.arange(200)
    mask = np.repeat(np.clip((120 - cols) / 40, 0, 1)[None, :], 60, 0).astype(np.float32)  # feathered over 80..120
    before = np.full((60, 200, 3), 100, np.uint8)
    after = np.round(before + mask[..., None] * np.array([30.0, 20.0, -10.0])).astype(np.uint8)
    reach = np.repeat(np.where(cols < 160, 255, 0)[None, :], 60, 0).astype(np.uint8)
    carried = webui.script_module.carry_into_band(Image.fromarray(before), Image.fromarray(after), mask,
                                                  Image.fromarray(reach))
    red = np.asarray(carried)[0, :, 0].astype(int) - 100
    assert red[:80].min() >= 29 and red[120:160].min() >= 27  # the subject, and the band beyond the mask
    assert red[80:120].min() >= 27, red[80:120]  # and between them no dip


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to read peak RSS")
def test_carrying_into_the_band_makes_no_full_size_float_copy(webui):
    """The picture before and after, the carried correction and the band were float32 at full size around a thin
    ring: 540 MB at 4K."""
    from benchmarks.pipeline_speed import peak_rss_mb, reset_peak_rss

    h, w = 2160, 3840
    before = np.random.default_rng(0).integers(0, 256, (h, w, 3), np.uint8)
    after = before.copy()
    after[540:1620, 1280:2560] //= 2
    mask = np.zeros((h, w), np.float32)
    mask[540:1620, 1280:2560] = 1
    reach = np.zeros((h, w), np.uint8)
    reach[520:1640, 1260:2580] = 255
    image, result, ring = Image.fromarray(before), Image.fromarray(after), Image.fromarray(reach)
    grown = []
    for _ in range(2):  # the smaller of two: the allocator now and then holds a few tens of MB more
        if not reset_peak_rss():
            pytest.skip("cannot reset the peak RSS count here")
        start = peak_rss_mb()
        carried = webui.script_module.carry_into_band(image, result, mask, ring)
        grown.append(peak_rss_mb() - start)
        del carried
    # the result's copy is 33 MB (PIL holds RGB in 4 bytes a pixel); one float32 copy of the picture is 100 MB
    assert min(grown) < 150, f"peak RSS grew by {min(grown):.0f} MB carrying into a 4K picture's band"


def _overlaid(webui, full, blur, width, height, **settings):
    """An inpainting job with the overlay mask the WebUI makes of ``full`` (Mask blur ``blur``, whole picture)."""
    from PIL import ImageFilter

    p = webui.processing.StableDiffusionProcessingImg2Img(width=width, height=height, mask=Image.fromarray(full),
                                                          inpaint_full_res=False, **settings)
    blurred = np.asarray(Image.fromarray(full).filter(ImageFilter.GaussianBlur(blur))) if blur else full
    p.mask_for_overlay = Image.fromarray(np.clip(blurred.astype(int) * 2, 0, 255).astype(np.uint8))
    return p


@pytest.mark.parametrize("blur", [0, 4])
def test_a_ring_grow_took_off_the_painted_mask_stays_as_generated(webui, blur):
    """The band was what the overlay shows beyond the grown mask: with Grow < 0 it took in the ring the shrink
    left out, recoloured by the carried correction (43 levels on average)."""
    full = np.zeros((128, 128), np.uint8)
    full[32:96, 32:96] = 255
    before = np.asarray(_generated(128, 128)).astype(int)
    before[32:96, 32:96] = np.clip(before[32:96, 32:96] + [60, -20, -40], 0, 255)
    before = Image.fromarray(before.astype(np.uint8))
    ring = np.zeros((128, 128), bool)
    ring[32:96, 32:96] = True
    ring[40:88, 40:88] = False
    script, runner = _runner(webui, True)
    p = _overlaid(webui, full, blur, 128, 128)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=INPAINT, grow=-8,
                          threshold=0)
    after = np.asarray(_postprocess(webui, runner, p, before)).astype(int)
    changed = np.abs(after - np.asarray(before).astype(int)).max(-1) > 0
    assert changed[40:88, 40:88].any() and not changed[ring].any()
    assert not changed[~full.astype(bool)].any()  # nor the band beyond it: corrected, it stood apart


def test_a_blank_mask_with_only_masked_pastes_nothing_back_so_no_subject_is_lost(webui):
    """With a blank mask and 'Only masked' the WebUI generates the whole picture and pastes nothing back
    (mask_for_overlay None): a pasted subject was refused as 100 % lost."""
    script, runner = _runner(webui, True)
    p = webui.processing.StableDiffusionProcessingImg2Img(width=64, height=48, init_images=[_generated(seed=1)],
                                                          mask=Image.new("L", (64, 48), 0), inpaint_full_res=False)
    p.mask_for_overlay = None  # as the WebUI leaves it: "Unable to perform 'Inpaint Only mask' because mask is blank"
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=_subject(), x=30, y=20)
    _postprocess(webui, runner, p, _generated())
    assert p.extra_generation_params["PHNet result"].startswith("changed by RMS")


@pytest.mark.parametrize("padding, grow, message", [
    (0, 0, r"all mask \(padding 0 px\).*raise 'Only masked padding, pixels'"),
    (32, 32, r"Grow 32 / Feather 0 filled the whole generated crop .*lower Grow"),  # it named the padding of 32
])
def test_an_only_masked_crop_that_is_all_mask_names_its_cause(webui, capsys, padding, grow, message):
    full = np.zeros((128, 128), np.uint8)
    full[32:96, 32:96] = 255
    script, runner = _runner(webui, True)
    p = webui.processing.StableDiffusionProcessingImg2Img(width=64, height=64, mask=Image.fromarray(full),
                                                          inpaint_full_res=True, inpaint_full_res_padding=padding)
    p.paste_to = (32 - padding, 32 - padding, 64 + 2 * padding, 64 + 2 * padding)  # the mask's box, padded
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=INPAINT, grow=grow)
    _fails(webui, capsys, runner, p, message)


def test_an_la_inpaint_mask_is_read_by_its_luminance_as_the_webui_reads_it(webui):
    luminance = np.zeros((48, 64), np.uint8)
    luminance[10:30, 10:30] = 255
    alpha = np.full((48, 64), 255, np.uint8)
    alpha[:, 32:] = 0  # an alpha that is not the strokes
    la = Image.merge("LA", (Image.fromarray(luminance), Image.fromarray(alpha)))
    p = webui.processing.StableDiffusionProcessingImg2Img(
        width=64, height=48, init_images=[_generated(seed=1)], mask=la, inpaint_full_res=False)
    assert np.array_equal(np.asarray(webui.script_module.inpaint_mask(p, (64, 48))), luminance)


def test_an_rgba_sketch_mask_carries_the_strokes_in_alpha(webui):
    """Like the WebUI's create_binary_mask: gradio's RGBA masks hold the strokes in alpha, unless
    the alpha is fully opaque (an uploaded black/white picture): then its grey values count."""
    img2img = webui.processing.StableDiffusionProcessingImg2Img
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[2:5, 3:6, 3] = 255
    p = img2img(width=8, height=8, mask=Image.fromarray(rgba), inpaint_full_res=False)
    np.testing.assert_array_equal(np.asarray(webui.script_module.inpaint_mask(p, (8, 8))), rgba[..., 3])
    opaque = np.full((8, 8, 4), 255, np.uint8)
    opaque[..., :3] = 0
    opaque[1:3, 1:3, :3] = 255
    p = img2img(width=8, height=8, mask=Image.fromarray(opaque), inpaint_full_res=False)
    np.testing.assert_array_equal(np.asarray(webui.script_module.inpaint_mask(p, (8, 8))), opaque[..., 0])


def test_with_overlay_original_off_no_band_around_the_mask_is_corrected(webui, monkeypatch):
    """With "Overlay original for inpaint" off the WebUI shows every generated pixel: the band the overlay would
    have blended got the subject's correction, a halo round the subject."""
    from PIL import ImageFilter

    full = np.zeros((128, 128), np.uint8)
    full[48:80, 48:80] = 255
    overlay = Image.fromarray(full).filter(ImageFilter.GaussianBlur(4))
    monkeypatch.setattr(importlib.import_module("modules.shared").opts, "overlay_inpaint", False, raising=False)
    script, runner = _runner(webui, True)
    p = webui.processing.StableDiffusionProcessingImg2Img(width=128, height=128, mask=Image.fromarray(full),
                                                          inpaint_full_res=False)
    p.mask_for_overlay = Image.fromarray(np.clip(np.asarray(overlay).astype(int) * 2, 0, 255).astype(np.uint8))
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=INPAINT)
    before = _generated(128, 128)
    after = np.asarray(_postprocess(webui, runner, p, before)).astype(int)
    changed = np.abs(after - np.asarray(before).astype(int)).max(-1) > 0
    painted = np.asarray(webui.script_module.inpaint_mask(p, (128, 128))) > 0
    assert changed[painted].any() and not changed[~painted].any()


def test_a_grey_inpaint_mask_is_rounded_as_the_webui_rounds_it(webui, capsys):
    """A sketch's "Mask transparency" (or a grey upload) gives a grey mask, which the WebUI rounds at 128: a 178
    subject was regenerated whole but harmonized at 70 % ("a faint mask"); a 100 one was not regenerated at all,
    yet reported changed."""
    script, runner = _runner(webui, True)
    after = {}
    for value in (255, 178, 100):
        mask = np.zeros((48, 64), np.uint8)
        mask[10:40, 20:50] = value
        p = webui.processing.StableDiffusionProcessingImg2Img(
            width=64, height=48, init_images=[_generated(seed=1)], mask=Image.fromarray(mask), inpaint_full_res=False)
        p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=INPAINT)
        after[value] = (np.asarray(_postprocess(webui, runner, p, _generated())),
                        str(p.extra_generation_params["PHNet result"]))
    assert np.array_equal(after[178][0], after[255][0]) and after[178][1] == after[255][1]
    assert "faint mask" not in after[178][1]
    assert after[100][1].startswith("not run") and "empty" in after[100][1]
    soft = webui.processing.StableDiffusionProcessingImg2Img(width=64, height=48, mask=Image.new("L", (64, 48), 178),
                                                             inpaint_full_res=False)
    soft.mask_round = False  # soft inpainting keeps the mask's shades
    assert np.asarray(webui.script_module.inpaint_mask(soft, (64, 48))).max() == 178
