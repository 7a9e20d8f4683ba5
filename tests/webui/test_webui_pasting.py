"""A subject pasted onto the picture (the "Pasted subject (alpha)" source): its placement, its alpha, and the API's
ways to send it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.webui.harness import (SAM, SUBJECT, _args, _changed_only_inside, _fails, _generated, _postprocess,
                                 _reported, _runner, _subject)


def test_a_pasted_subject_mostly_off_the_picture_is_named(webui, capsys):
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=_subject(), x=0, y=0, anchor="center")
    _postprocess(webui, runner, p, _generated())
    assert "of the pasted subject lies outside the picture (its center at x 0, y 0)" in p.extra_generation_params[
        "PHNet result"]
    assert "lies outside the picture" in capsys.readouterr().out


def test_a_small_scaled_subject_inside_the_picture_is_not_said_to_be_outside(webui):
    """Its expected area was its size times scale², where the paste rounds the scaled size: 4×4 of 4.5²."""
    settings = webui.script_module.Settings(True, "tiny-phnet", 1.0, SUBJECT, Image.new("RGBA", (30, 30), (200, 40,
                                            40, 255)), 50, 50, 0.15, "top-left")
    _, _, notes = webui.script_module._paste_subject(_generated(256, 256), settings)
    assert notes == []


def test_a_subject_is_said_to_be_outside_from_just_past_a_twentieth_of_its_area(webui):
    """An opaque 400×25 cut-out with 21 of its columns off the picture (5.25 %) is named, with 20 (5 %) it is not;
    the area is its alpha's cover on 0..255 (under a hand-made mutant reading it on 0..256 the first went unsaid)."""
    opaque = Image.new("RGBA", (400, 25), (200, 40, 40, 255))
    notes = {x: webui.script_module._paste_subject(_generated(512, 64), webui.script_module.Settings(
        True, "tiny-phnet", 1.0, SUBJECT, opaque, x, 0, 1.0, "top-left"))[2] for x in (-21, -20)}
    assert notes[-21] == ["5% of the pasted subject lies outside the picture (its top-left at x -21, y 0): move it, "
                          "or scale it down"]
    assert notes[-20] == []


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_pasted_subject_is_the_composite_rounded_on_the_subject_and_the_pictures_own_pixels_off_it(webui, mode):
    """It is built in 8 bits as the library's float round trip built it: the composite in 0..1 rounded to the
    nearest level (in float64), the picture's own pixels where the mask is 0, and the picture's ICC profile."""
    from phnet.compositing import paste_subject

    rng = np.random.default_rng(1)
    picture = Image.fromarray(rng.integers(0, 256, (48, 64, 3), np.uint8)).convert(mode)
    picture.info["icc_profile"] = bytes(16) + b"RGB " + bytes(108)
    cut_out = rng.integers(0, 256, (20, 14, 4), np.uint8)
    cut_out[..., 3] = rng.choice([0, 40, 255], (20, 14))
    settings = webui.script_module.Settings(True, "tiny-phnet", 1.0, SUBJECT, Image.fromarray(cut_out), 55, 30, 1.3,
                                            "top-left")  # soft edges from the scale, the corner off the picture
    pasted, mask, _ = webui.script_module._paste_subject(picture, settings)
    composite, expected_mask = paste_subject(picture, Image.fromarray(cut_out), x=55, y=30, scale=1.3,
                                             allow_empty=True)
    rgb = np.asarray(picture.convert("RGB"))
    rounded = np.round(np.clip(composite, 0, 1).astype(np.float64) * 255).astype(np.uint8)
    np.testing.assert_array_equal(mask, expected_mask)
    assert ((mask > 0) & (mask < 1)).any() and pasted.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(pasted), np.where(mask[..., None] > 0, rounded, rgb))
    assert pasted.info["icc_profile"] == picture.info["icc_profile"]


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to read peak RSS")
def test_a_pasted_subject_makes_no_full_size_float_copy_after_the_paste(webui, monkeypatch):
    """The picture and the composite went through float32 tensors and a float64 rounding back to 8 bits: 600 MB at
    4K after the paste itself."""
    import phnet.compositing
    from benchmarks.pipeline_speed import peak_rss_mb, reset_peak_rss

    pasted_at = []
    paste = phnet.compositing.paste_subject

    def paste_then_count(*args, **kwargs):
        composite = paste(*args, **kwargs)
        reset_peak_rss()
        pasted_at.append(peak_rss_mb())
        return composite

    monkeypatch.setattr(phnet.compositing, "paste_subject", paste_then_count)
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (2160, 3840, 3), np.uint8))
    cut_out = np.zeros((1080, 1280, 4), np.uint8)
    cut_out[..., 0] = 250
    cut_out[10:-10, 10:-10, 3] = 255
    settings = webui.script_module.Settings(True, "tiny-phnet", 1.0, SUBJECT, Image.fromarray(cut_out), 1280, 540,
                                            1.0, "top-left")
    if not reset_peak_rss():
        pytest.skip("cannot reset the peak RSS count here")
    grown = []
    for _ in range(2):  # the smaller of two: the allocator now and then holds a few tens of MB more
        pasted, _, _ = webui.script_module._paste_subject(picture, settings)
        grown.append(peak_rss_mb() - pasted_at[-1])
        del pasted
    # the 8-bit result is 25 MB, the subject's pixels in float64 32 MB; one float32 copy of the picture is 100 MB
    assert min(grown) < 150, f"peak RSS grew by {min(grown):.0f} MB after pasting onto a 4K picture"


def test_a_subject_pasted_with_the_default_anchor_at_0_0_is_whole(webui):
    script, runner = _runner(webui, False)
    assert script.infotext_fields and webui.script_module.Settings().anchor == "top-left"
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=_subject())
    _postprocess(webui, runner, p, _generated())
    assert "outside the picture" not in p.extra_generation_params["PHNet result"]


def test_pasted_subject_is_harmonized(webui):
    script, runner = _runner(webui, False)
    rgba = np.zeros((16, 12, 4), np.uint8)
    rgba[..., :3] = (230, 40, 40)
    rgba[2:14, 2:10, 3] = 255
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=Image.fromarray(rgba), x=30, y=20, scale=1.0, anchor="top-left")  # fmt: skip
    before = _generated()
    after = _postprocess(webui, runner, p, before)
    mask = np.zeros((48, 64), np.float32)
    mask[22:34, 32:40] = 1.0
    _changed_only_inside(before, after, mask)
    assert p.extra_generation_params["PHNet subject"] == "x 30, y 20, scale 1, anchor top-left"


@pytest.mark.parametrize("source, feather, matte", [(SUBJECT, 0, True), (SUBJECT, 2, False), (SAM, 0, False)])
def test_a_pasted_subject_s_soft_edge_is_read_as_its_alpha(webui, monkeypatch, source, feather, matte):
    """The pasted subject's mask is the alpha it was pasted with: its soft edge got about 0.8 of its change, read as
    a feather. Feathered by the tab, or from SAM, it is a feather."""
    from phnet.harmonizer import Harmonizer

    seen = []
    run = Harmonizer.harmonize
    monkeypatch.setattr(Harmonizer, "harmonize", lambda self, *a, **k: seen.append(k["mask_is_alpha"]) or run(
        self, *a, **k))
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=source,
                          subject=_subject(), sam_weights="tiny_sam.safetensors", box_x0=8, box_y0=4, box_x1=40,
                          box_y1=30, feather=feather)  # fmt: skip
    _postprocess(webui, runner, p, _generated())
    assert seen == [matte]


@pytest.mark.parametrize("inpainted_columns, lost", [((0, 28), True), ((20, 50), False)])
def test_a_subject_pasted_outside_the_inpaint_mask_is_refused_not_silently_lost(webui, capsys, inpainted_columns,
                                                                               lost):
    """After this hook the WebUI pastes the original picture back outside the inpaint mask: a subject pasted
    there vanished while the infotext said 'changed by RMS 92'."""
    script, runner = _runner(webui, True)
    inpaint = np.zeros((48, 64), np.uint8)
    inpaint[5:45, slice(*inpainted_columns)] = 255
    rgba = np.zeros((16, 12, 4), np.uint8)
    rgba[..., :3] = (230, 40, 40)
    rgba[2:14, 2:10, 3] = 255
    p = webui.processing.StableDiffusionProcessingImg2Img(
        width=64, height=48, init_images=[_generated(seed=1)], mask=Image.fromarray(inpaint), inpaint_full_res=False)
    p.mask_for_overlay = Image.fromarray(inpaint)  # as the WebUI sets it for a painted mask (Mask blur 0)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=Image.fromarray(rgba), x=30, y=20, scale=1.0, anchor="top-left")  # fmt: skip
    if lost:
        _fails(webui, capsys, runner, p, r"100% of the pasted subject lies outside the inpaint mask.*Paint the "
                                         "inpaint mask over the whole subject")
    else:
        assert _postprocess(webui, runner, p, _generated()) is not None
        assert p.extra_generation_params["PHNet result"].startswith("changed by RMS")


@pytest.mark.parametrize("grow, feather", [(12, 0.0), (0, 8.0)])
def test_grow_and_feathers_halo_outside_the_inpaint_mask_is_no_subject_lost(webui, capsys, grow, feather):
    """The share outside the inpaint mask was measured after Grow and Feather: their halo of background refused
    a subject lying inside the mask ('11% of the pasted subject lies outside')."""
    script, runner = _runner(webui, True)
    inpaint = np.zeros((48, 64), np.uint8)
    inpaint[5:45, 24:48] = 255
    rgba = np.zeros((16, 12, 4), np.uint8)
    rgba[..., :3] = (230, 40, 40)
    rgba[2:14, 2:10, 3] = 255  # lands on columns 32-39, rows 22-33
    p = webui.processing.StableDiffusionProcessingImg2Img(
        width=64, height=48, init_images=[_generated(seed=1)], mask=Image.fromarray(inpaint), inpaint_full_res=False)
    p.mask_for_overlay = Image.fromarray(inpaint)  # as the WebUI sets it: without it the share is not measured
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=Image.fromarray(rgba), x=30, y=20, scale=1.0, anchor="top-left", grow=grow,
                          feather=feather)  # fmt: skip
    assert _postprocess(webui, runner, p, _generated()) is not None
    assert p.extra_generation_params["PHNet result"].startswith("changed by RMS")


def test_a_grow_that_shrinks_the_subject_to_nothing_names_grow(webui, capsys):
    script, runner = _runner(webui, False)
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[4:12, 4:12] = 255
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=Image.fromarray(rgba), x=20, y=20, grow=-6)  # fmt: skip
    _fails(webui, capsys, runner, p, r"Grow -6 shrank the mask to nothing: raise Grow toward 0")


def test_a_feather_that_spreads_a_small_subject_too_thin_names_feather(webui, capsys):
    # it was blamed on the mask's scale: "a 16-bit mask holding 0..255 values, or one divided by 255 twice?"
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=_subject(), x=30, y=20, scale=0.1, feather=16.0)  # fmt: skip
    _fails(webui, capsys, runner, p, r"Feather 16 spread the mask too thin to mark a subject .*: lower Feather\.$")
    assert p.extra_generation_params["PHNet result"].startswith("not run: Feather 16 spread the mask too thin")
    # through the API Feather has no upper bound: one wider than the picture is refused before it is built
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=_subject(), x=30, y=20, feather=3000.0)  # fmt: skip
    _fails(webui, capsys, runner, p, r"^PHNet: feather 3000 is wider than the 64x48 mask.*at most 64 pixels\.$")


def test_api_subject_as_base64(webui, capsys):
    """API clients send images as base64 strings (optionally a data URL)."""
    import base64
    import io

    script, runner = _runner(webui, False)
    rgba = np.zeros((16, 12, 4), np.uint8)
    rgba[..., :3] = (230, 40, 40)
    rgba[2:14, 2:10, 3] = 255
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, format="PNG")
    encoded = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet",
                          mask_source=SUBJECT, subject=encoded, x=30, y=20,
                          anchor="top-left")  # fmt: skip
    before = _generated()
    mask = np.zeros((48, 64), np.float32)
    mask[22:34, 32:40] = 1.0
    _changed_only_inside(before, _postprocess(webui, runner, p, before), mask)
    wrapped = base64.encodebytes(buf.getvalue()).decode()  # `base64 file.png`: lines of 76 columns
    assert "\n" in wrapped.strip()
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet",
                          mask_source=SUBJECT, subject=wrapped, x=30, y=20, anchor="top-left")  # fmt: skip
    _changed_only_inside(before, _postprocess(webui, runner, p, before), mask)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet",
                          mask_source=SUBJECT, subject="not base64!")  # fmt: skip
    _fails(webui, capsys, runner, p, "not a base64-encoded image")


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_an_animated_subject_sent_through_the_api_is_pasted_by_its_first_frame(webui, capsys, fmt):
    """As the WebUI's image box keeps an upload (gradio converts it, which reads its first frame); the API's was
    refused with advice for the command line and ComfyUI."""
    import base64
    import io

    script, runner = _runner(webui, False)
    first, second = _subject(), Image.fromarray(np.full((16, 12, 4), (40, 230, 40, 255), np.uint8))
    encoded = {}
    for name, frames in (("still", [first]), ("animated", [first, second])):
        buf = io.BytesIO()
        frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:])
        encoded[name] = base64.b64encode(buf.getvalue()).decode()
    out = {}
    for name in ("still", "animated"):
        p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
        p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                              subject=encoded[name], x=30, y=20)  # fmt: skip
        out[name] = np.asarray(_postprocess(webui, runner, p, _generated()))
        assert _reported(webui, capsys)[1] == []
    np.testing.assert_array_equal(out["animated"], out["still"])
    assert p.extra_generation_params["PHNet result"].endswith("; the subject is animated: its first frame is pasted")


def test_a_subject_given_as_a_numpy_array_is_pasted(webui, capsys):
    # comparing it with "" raised numpy's "truth value of an array ... is ambiguous"
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=np.asarray(_subject()), x=30, y=20)  # fmt: skip
    before = _generated()
    mask = np.zeros((48, 64), np.float32)
    mask[22:34, 32:40] = 1.0
    _changed_only_inside(before, _postprocess(webui, runner, p, before), mask)
    assert _reported(webui, capsys)[1] == []
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject="  ")  # fmt: skip
    _fails(webui, capsys, runner, p, "upload a subject cut-out")


def test_a_subject_past_pils_pixel_limit_is_named_with_the_fix(webui, monkeypatch):
    """A decompression bomb sent through the API ended in PIL's own words, naming no fix."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (64, 64)).save(buf, format="PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64² is then past twice the limit
    with pytest.raises(ValueError, match="holds more pixels than PIL opens .*send a smaller cut-out"):
        webui.script_module._decode_image(base64.b64encode(buf.getvalue()).decode())


def test_a_subject_without_transparency_is_named_and_a_fully_or_almost_transparent_one_refused(webui, capsys):
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    opaque = Image.new("RGB", (12, 16), (230, 40, 40))  # a JPEG, or gradio's RGBA of one: no cut-out
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=opaque, x=30, y=20, scale=1.0, anchor="top-left")  # fmt: skip
    _postprocess(webui, runner, p, _generated())
    assert "the subject has no transparency: its whole rectangle is pasted" in capsys.readouterr().out
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=Image.new("RGBA", (12, 16)), x=30, y=20)  # fmt: skip
    _fails(webui, capsys, runner, p, "the subject is fully transparent, so there is nothing to paste")
    # one whose strongest alpha is below the library's faint mark was blamed on a 16-bit mask or one divided by 255
    # twice, neither of which an uploaded cut-out is
    faint = np.asarray(_subject()).copy()
    faint[..., 3] = np.minimum(faint[..., 3], 3)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=Image.fromarray(faint), x=30, y=20)  # fmt: skip
    _fails(webui, capsys, runner, p, r"^PHNet: the subject is almost fully transparent \(its strongest alpha is "
                                     r"3/255\), so it marks no subject to harmonize: upload a cut-out whose subject "
                                     r"is opaque\.$")
    faint[..., 3] = np.minimum(faint[..., 3] * 2, 4)  # 4/255 is above the mark: harmonized, through a faint mask
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=Image.fromarray(faint), x=30, y=20)  # fmt: skip
    _postprocess(webui, runner, p, _generated())
    assert _reported(webui, capsys)[1] == []


def test_a_key_colour_subject_is_a_cut_out_and_one_landing_by_its_margin_only_is_named(webui, capsys):
    """An API subject whose transparency is a tRNS key colour was called opaque and half outside; a cut-out whose
    transparent margin alone overlapped the picture got 'the mask is empty'."""
    import base64
    import io

    rgb = np.zeros((16, 12, 3), np.uint8)
    rgb[...] = (0, 255, 0)
    rgb[4:12, 3:9] = (230, 40, 40)
    keyed = Image.fromarray(rgb)
    buffer = io.BytesIO()
    keyed.save(buffer, "PNG", transparency=(0, 255, 0))
    sent = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    settings = webui.script_module.Settings(True, "tiny-phnet", 1.0, SUBJECT, sent, 30, 20, 1.0, "top-left")
    _, mask, notes = webui.script_module._paste_subject(_generated(), settings)
    assert float(np.asarray(mask).sum()) == 48 and notes == []
    assert "no transparency" not in capsys.readouterr().out
    margin = np.zeros((40, 40, 4), np.uint8)
    margin[10:30, 10:30] = (230, 40, 40, 255)  # a cut-out with a 10 px transparent margin
    settings = webui.script_module.Settings(True, "tiny-phnet", 1.0, SUBJECT, Image.fromarray(margin), 58, 20, 1.0,
                                            "top-left")
    with pytest.raises(ValueError, match="no opaque part of the pasted subject lands on the picture"):
        webui.script_module._paste_subject(_generated(), settings)


def test_a_subject_whose_alpha_looks_inverted_is_refused_in_the_webuis_words(webui, capsys):
    """The library's paste refuses a cut-out opaque on its surroundings and transparent on the subject; the script
    pasted the surroundings and harmonized them as the subject."""
    script, runner = _runner(webui, False)
    inverted = np.asarray(_subject()).copy()
    inverted[..., 3] = 255 - inverted[..., 3]  # opaque edges, a transparent hole where the subject is
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=Image.fromarray(inverted), x=30, y=20)  # fmt: skip
    _fails(webui, capsys, runner, p, r"^PHNet: the subject's alpha covers 50% of the cut-out and 100% of its edge, "
                                     r"so it looks inverted \(the subject must be opaque.*\): invert the cut-out's "
                                     r"transparency.*upload it again.*transparent margin\.$")
    assert p.extra_generation_params["PHNet result"].startswith("not run: the subject's alpha covers 50%")
    assert "alpha_as_given" not in p.extra_generation_params["PHNet result"]  # no such setting in the WebUI
    # a cut-out whose subject fills its picture but for its corners covers the middle: pasted
    face = np.asarray(_subject()).copy()
    face[..., 3] = 255
    face[:3, :3, 3] = face[-3:, -3:, 3] = 0
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=Image.fromarray(face), x=30, y=20)  # fmt: skip
    _postprocess(webui, runner, p, _generated())
    assert _reported(webui, capsys)[1] == []
