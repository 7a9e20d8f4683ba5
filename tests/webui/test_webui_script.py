"""The SD-WebUI extension script, loaded and driven like the WebUI does (stand-ins, tiny models)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from phnet.sam.loading import SeveralCheckpoints
from phnet.sources import NotInCache
from tests.webui.harness import open_tab, script_args


# The mask sources and the default weights as API clients send them: these strings are an interface.
INPAINT, SUBJECT, SAM = "Inpaint mask", "Pasted subject (alpha)", "SAM box"
DEFAULT = "default (bundled)"
OFFICIAL = ["official-iharmony512", "official-ffhqh256", "official-ffhqh512", "official-ffhqh1024"]


def _generated(w=64, h=48, seed=0):
    """A stand-in for a freshly generated image (what pp.image holds)."""
    rng = np.random.RandomState(seed)
    base = np.linspace(40, 200, w, dtype=np.float32)[None, :, None] * np.ones((h, 1, 3), np.float32)
    return Image.fromarray(np.clip(base + rng.randint(0, 30, (h, w, 3)), 0, 255).astype(np.uint8))


def _subject():
    """A red cut-out with transparent edges, for the "Pasted subject" mask source."""
    rgba = np.zeros((16, 12, 4), np.uint8)
    rgba[..., :3] = (230, 40, 40)
    rgba[2:14, 2:10, 3] = 255
    return Image.fromarray(rgba)


def _runner(webui, is_img2img):
    return open_tab(webui, is_img2img)


def _args(webui, runner, script, **values):
    return script_args(webui, runner, script, **values)


def _postprocess(webui, runner, p, image):
    """One generated image through the always-on scripts, the way process_images hands it over."""
    p.scripts = runner
    (out,) = webui.processing.postprocess_generated(p, [image])
    return out


def _reported(webui, capsys):
    """The errors the WebUI printed (it reports a failing hook and carries on)."""
    err = capsys.readouterr().err
    records = list(webui.errors.exception_records)
    webui.errors.exception_records.clear()
    return err, records


def _changed_only_inside(before: Image.Image, after: Image.Image, mask: np.ndarray):
    a, b = np.asarray(before), np.asarray(after)
    assert after.size == before.size and after.mode == "RGB"
    outside = mask == 0
    np.testing.assert_array_equal(b[outside], a[outside])  # bit-identical outside
    assert np.abs(b[mask > 0.5].astype(int) - a[mask > 0.5].astype(int)).max() > 0  # harmonized inside


# ---- import and UI -----------------------------------------------------------------------


def test_script_imports_and_is_always_visible(webui):
    cls = webui.script_module.PHNetHarmonizeScript
    assert issubclass(cls, webui.scripts.Script)
    s = cls()
    assert s.title() == "PHNet harmonize"
    assert s.show(False) is webui.scripts.AlwaysVisible
    assert s.show(True) is webui.scripts.AlwaysVisible


@pytest.mark.parametrize("is_img2img", [False, True])
def test_ui_builds(webui, is_img2img):
    script, runner = _runner(webui, is_img2img)
    controls = script.controls
    assert len(controls) == 17 and script.args_to - script.args_from == 17
    built = webui.gradio.built
    accordion = next(c for c in built if c.kind == "Accordion")
    assert accordion.label == "PHNet harmonize" and accordion.kwargs["open"] is False
    enable, weights, strength, mask_source = controls[:4]
    assert enable.kind == "Checkbox" and enable.value is False  # off by default
    assert weights.choices[0] == DEFAULT and weights.value == DEFAULT and "tiny-phnet" in weights.choices
    assert weights.kwargs["allow_custom_value"] is True  # a Hub repo id can be typed
    assert strength.value == 1.0 and strength.kwargs["maximum"] == 1.0
    expected = [INPAINT, SUBJECT, SAM] if is_img2img else [SUBJECT, SAM]
    assert mask_source.choices == expected
    sam = controls[9]
    assert "tiny_sam.safetensors" in sam.choices
    # Enable is the accordion's header (InputAccordion: a closed accordion still shows PHNet is on), every
    # other control lives inside it, and ids are unique per tab
    assert enable.accordion is accordion and enable.accordion_label == "PHNet harmonize"
    assert all(c in accordion.descendants() for c in controls[1:])
    ids = [c.elem_id for c in controls]
    prefix = f"script_{script.tabname}_phnet_harmonize_"
    assert all(i.startswith(prefix) for i in ids)
    # the hooks read the values back in Settings' field order
    assert [i[len(prefix):] for i in ids] == list(webui.script_module.Settings._fields)
    # what the WebUI's runner derives from the controls for /sdapi/v1/scripts
    assert script.api_info["is_alwayson"] is True and len(script.api_info["args"]) == 17
    assert script.api_info["args"][3]["choices"] == expected
    assert script.group.visible is True and accordion in script.group.descendants()
    # switching the mask source shows the matching settings group
    (event, fn, inputs, outputs), = mask_source.events
    subject_vis, sam_vis = fn(SAM)
    assert subject_vis["visible"] is False and sam_vis["visible"] is True
    # kept out of the saved defaults (ui-config.json), which are set after the UI is built and fire no change
    assert mask_source.do_not_save_to_config is True
    assert [k for _, k in script.infotext_fields[1:3]] == ["PHNet strength", "PHNet weights"]


@pytest.mark.parametrize("is_img2img", [False, True])
def test_pasted_generation_parameters_restore_the_settings_this_tab_has(webui, is_img2img):
    """What the WebUI does with infotext_fields: a callable's None leaves the control as it is."""
    script, _ = _runner(webui, is_img2img)
    fields = {control.elem_id.rsplit("_harmonize_", 1)[1]: key for control, key in script.infotext_fields}
    read = {name: (key(params) if callable(key) else params.get(key)) for name, key in fields.items()
            for params in [{"PHNet strength": 0.8, "PHNet weights": "tiny-phnet", "PHNet mask": INPAINT}]}
    # the threshold goes back to the weights' own when none was written; an inpaint mask is img2img's alone
    unwritten = {**dict.fromkeys(["x", "y", "scale", "anchor", "sam_weights", "box_x0", "box_y0", "box_x1",
                                  "box_y1"]), "grow": 0, "feather": 0.0}  # refine is written only when not 0
    assert read == {"enable": True, "strength": 0.8, "weights": "tiny-phnet", "threshold": -1.0,
                    "mask_source": INPAINT if is_img2img else None, **unwritten}
    threshold = dict(fields)["threshold"]
    assert threshold({"PHNet strength": 1.0, "PHNet threshold": 0.0}) == 0.0 and threshold({"Steps": 20}) is None


def _as_pasted(control, value):
    """A value read back from the infotext as the WebUI's paste sets it (infotext_utils.connect_paste): converted
    to the type of the control's value, and the control left as it is (None) where that fails."""
    if value is None:
        return None
    kind = type(control.value)
    try:
        return False if kind is bool and value == "False" else float(value) if kind is int else kind(value)
    except Exception:
        return None


def test_the_subject_sam_and_refine_settings_come_back_from_the_infotext(webui):
    """Pasting parameters back restored strength and weights only: a SAM run came back with the default box
    and no checkpoint, and failed; x and y were not even written."""
    script, _ = _runner(webui, False)
    m = webui.script_module
    fields = {control.elem_id.rsplit("_harmonize_", 1)[1]: (control, key) for control, key in script.infotext_fields}
    for settings in (m.Settings(True, "tiny-phnet", 0.5, SUBJECT, None, 40, -12.5, 1.5, "bottom-center", grow=3,
                                feather=1.5),
                     m.Settings(True, None, 1.0, SAM, sam_weights="owner/sam, v2:sam_vit_b.pth", box_x0=8, box_y0=4,
                                box_x1=40, box_y1=30)):
        params = {k: str(v) for k, v in settings.infotext().items()}  # the infotext holds text
        read = {name: _as_pasted(control, key(params)) for name, (control, key) in fields.items() if callable(key)}
        restored = {name: value for name, value in read.items() if value is not None}
        expected = {name: getattr(settings, name) for name in restored if name not in ("enable", "mask_source",
                                                                                         "threshold")}
        assert {name: restored[name] for name in expected} == expected
        assert len(expected) == (6 if settings.mask_source == SUBJECT else 7)  # SAM: grow and feather back to 0


def test_no_sam_checkpoint_is_recorded_as_none_chosen_not_as_a_file_named_none(webui):
    # the API's null was written as "None", which pasted back as a file name and was then not found
    script, _ = _runner(webui, False)
    m = webui.script_module
    settings = m.Settings.from_args([True, None, None, SAM, None, None, None, None, None, None, 8, 4, 40, 30])
    params = {k: str(v) for k, v in settings.infotext().items()}
    assert params["PHNet SAM"] == ", box (8, 4, 40, 30)"
    control, key = next((c, k) for c, k in script.infotext_fields if c.elem_id.endswith("_sam_weights"))
    pasted = _as_pasted(control, key(params))
    assert pasted == ""
    with pytest.raises(ValueError, match="No SAM checkpoint chosen"):
        m.load_segmenter(pasted, m._models_dirs()[1])


# ---- postprocess_image -------------------------------------------------------------------


def test_a_webui_without_input_accordion_gets_enable_inside_the_accordion(webui, monkeypatch):
    """A1111 before 1.7 has no modules.ui_components.InputAccordion."""
    import sys

    monkeypatch.setitem(sys.modules, "modules.ui_components", None)
    script, _ = _runner(webui, False)
    accordion = [c for c in webui.gradio.built if c.kind == "Accordion"][-1]
    enable = script.controls[0]
    assert enable.kind == "Checkbox" and enable.label == "Enable" and enable in accordion.descendants()
    assert all(c in accordion.descendants() for c in script.controls)


def test_disabled_does_nothing(webui):
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = runner.default_script_args()
    image = _generated()
    assert _postprocess(webui, runner, p, image) is image
    assert p.extra_generation_params == {}


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


def test_sam_box_is_harmonized(webui):
    from phnet.sam import SamSegmenter

    script, runner = _runner(webui, False)
    box = (8, 4, 40, 30)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SAM,
                          sam_weights="tiny_sam.safetensors", box_x0=box[0], box_y0=box[1], box_x1=box[2],
                          box_y1=box[3])  # fmt: skip
    before = _generated()
    seg = SamSegmenter.from_pretrained(webui.models_path / "sam" / "tiny_sam.safetensors", device="cpu")
    seg.set_image(before)
    expected = seg.predict(box=box)
    assert expected.sum() > 0
    _changed_only_inside(before, _postprocess(webui, runner, p, before), expected)
    assert p.extra_generation_params["PHNet SAM"] == "tiny_sam.safetensors, box (8, 4, 40, 30)"


def test_a_box_sent_as_floats_is_rounded_once_for_sam_and_the_infotext(webui, monkeypatch):
    # SAM segmented the box as sent, and the infotext recorded it rounded down: another box when pasted back
    from phnet.sam import SamSegmenter

    boxes = []
    real = SamSegmenter.segment
    monkeypatch.setattr(SamSegmenter, "segment", lambda self, image, *a, box=None, **k: boxes.append(box) or
                        real(self, image, *a, box=box, **k))
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SAM,
                          sam_weights="tiny_sam.safetensors", box_x0=8.6, box_y0=4.4, box_x1=40.7,
                          box_y1=29.5)  # fmt: skip
    _postprocess(webui, runner, p, _generated())
    assert boxes == [(9, 4, 41, 30)]
    assert p.extra_generation_params["PHNet SAM"] == "tiny_sam.safetensors, box (9, 4, 41, 30)"


def test_sam_waits_on_the_cpu_between_images(webui, monkeypatch):
    """The cached SAM stayed on the WebUI's GPU for the whole session (a vit_h holds 2.5 GB that the next
    generation needs): it now runs on the WebUI's device and goes back to the CPU after each image, and a
    new SAM choice drops the old model before the new one loads."""
    import torch
    from phnet.sam import SamSegmenter

    m = webui.script_module
    harmonizer = m.load_harmonizer("tiny-phnet", m._models_dirs()[0])  # PHNet on the CPU: only SAM's moves count
    monkeypatch.setattr(m, "load_harmonizer", lambda choice, phnet_dir: harmonizer)
    # the stand-in WebUI generates on the CPU, where a move to its device and none could not be told apart
    monkeypatch.setattr(importlib.import_module("modules.devices"), "device", torch.device("cuda", 7))
    moves = []
    monkeypatch.setattr(SamSegmenter, "to", lambda self, device: moves.append(str(device)) or self)
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SAM,
                          sam_weights="tiny_sam.safetensors", box_x0=8, box_y0=4, box_x1=40, box_y1=30)  # fmt: skip
    for seed in range(2):
        _postprocess(webui, runner, p, _generated(seed=seed))
        assert p.extra_generation_params["PHNet result"].startswith("changed by RMS")
    assert moves == ["cuda:7", "cpu"] * 2
    seg = webui.script_module._loaded["sam"][1]
    assert seg.device.type == "cpu" and next(seg.model.parameters()).device.type == "cpu"

    built = []
    monkeypatch.setattr(webui.script_module, "_loaded", {"sam": (("old",), seg)})
    webui.script_module._cached("sam", ("new",), lambda: built.append(dict(webui.script_module._loaded)) or seg)
    assert built == [{}]


def test_a_sam_box_outside_the_picture_is_refused_before_sam_moves_or_encodes(webui, capsys, monkeypatch):
    """The box was checked only after SAM had gone to the WebUI's device and encoded the picture."""
    from phnet.sam import SamSegmenter

    calls = []
    real_to, real_encode = SamSegmenter.to, SamSegmenter._encode
    monkeypatch.setattr(SamSegmenter, "to", lambda self, device: calls.append(f"to {device}") or real_to(self, device))
    monkeypatch.setattr(SamSegmenter, "_encode",
                        lambda self, *a, **k: calls.append("encode") or real_encode(self, *a, **k))
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SAM,
                          sam_weights="tiny_sam.safetensors", box_x0=70, box_y0=4, box_x1=90, box_y1=30)  # fmt: skip
    _fails(webui, capsys, runner, p, r"^PHNet: box \(70.0, 4.0, 90.0, 30.0\) has no area inside the 64x48 image .*"
                                     r"in pixels\.$")  # the library's refusal as the WebUI's own sentence
    assert p.extra_generation_params["PHNet result"].startswith("not run: box (70.0, 4.0, 90.0, 30.0) has no area")
    assert p.extra_generation_params["PHNet result"].endswith("in pixels.")
    assert calls == []

def test_two_requests_at_once_each_get_the_sam_mask_of_their_own_picture(webui, monkeypatch):
    """The cached SAM encoded one request's picture and decoded its box in two calls: another request's picture,
    encoded in between, gave the first its mask (a wrong region harmonized, and the infotext said it changed)."""
    import threading

    m = webui.script_module
    seg = m.load_segmenter("tiny_sam.safetensors", m._models_dirs()[1])
    box = (8, 4, 40, 30)
    first, second = _generated(seed=0), _generated(seed=5)
    alone = [seg.segment(picture, box=box) for picture in (first, second)]
    assert not np.array_equal(*alone)
    seg.reset_image()
    other = []

    class Lock:  # SAM's lock, which lets the second request in once the first lets go of it with its picture set
        def __init__(self, lock):
            self.lock = lock

        def __enter__(self):
            self.lock.acquire()

        def __exit__(self, *exc):
            self.lock.release()
            if not other and seg.is_image_set and threading.current_thread() is threading.main_thread():
                other.append(threading.Thread(target=lambda: other.append(m._segment(seg, second, box))))
                other[0].start()
                other[0].join(timeout=30)

    seg._lock = Lock(seg._lock)
    got = m._segment(seg, first, box)
    other[0].join(timeout=30)
    assert np.array_equal(got, alone[0]) and np.array_equal(other[1], alone[1])


def test_sam_stays_on_the_device_until_the_last_request_at_once_is_done(webui, monkeypatch):
    """Each request moved SAM back to the CPU when it was done: one still to segment then ran there (a vit_h encode
    on the CPU takes a minute)."""
    import threading

    import torch

    m = webui.script_module
    monkeypatch.setattr(importlib.import_module("modules.devices"), "device", torch.device("cuda", 7))
    seg = m.load_segmenter("tiny_sam.safetensors", m._models_dirs()[1])
    where, ran_on, second_moved, first_done = ["cpu"], [], threading.Event(), threading.Event()

    def to(device):
        where[0] = str(device)
        if threading.current_thread() is not threading.main_thread():
            second_moved.set()
        return seg

    def segment(image, box):
        if threading.current_thread() is threading.main_thread():  # the first request lets the second move SAM in
            second.start()
            second_moved.wait(5)
        else:  # the second segments once the first is done
            first_done.wait(5)
        ran_on.append(where[0])
        return np.zeros((image.height, image.width), np.float32)

    monkeypatch.setattr(seg, "to", to)
    monkeypatch.setattr(seg, "segment", segment)
    picture, box = _generated(seed=0), (8, 4, 40, 30)
    second = threading.Thread(target=lambda: m._segment(seg, picture, box))
    m._segment(seg, picture, box)
    first_done.set()
    second.join(10)
    assert ran_on == ["cuda:7", "cuda:7"] and where == ["cpu"]


def test_a_picture_sam_cannot_encode_is_refused_before_sam_moves(webui, monkeypatch):
    """A picture too narrow for SAM (its short side scaled to 0) moved SAM to the device and failed in its encode."""
    from PIL import Image

    m = webui.script_module
    seg = m.load_segmenter("tiny_sam.safetensors", m._models_dirs()[1])
    moved = []
    monkeypatch.setattr(seg, "to", lambda device: moved.append(device))
    with pytest.raises(ValueError, match="short side would be 0"):
        m._segment(seg, Image.new("RGB", (4000, 1)), (0, 0, 10, 1))
    assert moved == []


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


def test_an_la_inpaint_mask_is_read_by_its_luminance_as_the_webui_reads_it(webui):
    luminance = np.zeros((48, 64), np.uint8)
    luminance[10:30, 10:30] = 255
    alpha = np.full((48, 64), 255, np.uint8)
    alpha[:, 32:] = 0  # an alpha that is not the strokes
    la = Image.merge("LA", (Image.fromarray(luminance), Image.fromarray(alpha)))
    p = webui.processing.StableDiffusionProcessingImg2Img(
        width=64, height=48, init_images=[_generated(seed=1)], mask=la, inpaint_full_res=False)
    assert np.array_equal(np.asarray(webui.script_module.inpaint_mask(p, (64, 48))), luminance)


def test_the_webuis_colour_correction_is_named_when_it_will_undo_part_of_the_change(webui, monkeypatch):
    script, runner = _runner(webui, True)
    mask = np.zeros((48, 64), np.uint8)
    mask[10:40, 20:50] = 255
    monkeypatch.setattr(importlib.import_module("modules.shared").opts, "img2img_color_correction", True)
    p = webui.processing.StableDiffusionProcessingImg2Img(
        width=64, height=48, init_images=[_generated(seed=1)], mask=Image.fromarray(mask), inpaint_full_res=False)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=INPAINT)
    _postprocess(webui, runner, p, _generated())
    assert "'Apply color correction to img2img results' runs after this" in p.extra_generation_params["PHNet result"]


def test_grow_and_feather_are_recorded(webui):
    script, runner = _runner(webui, False)
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[4:12, 4:12] = 255
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=Image.fromarray(rgba), x=20, y=20, grow=2, feather=1.5)  # fmt: skip
    before = _generated()
    after = _postprocess(webui, runner, p, before)
    assert after.size == before.size
    assert p.extra_generation_params["PHNet mask refine"] == "grow 2, feather 1.5"
    # the API may send a whole number as a string or a float (int("2.0") raised)
    for grow, same_as in (("2.0", 2), (-2.0, -2), ("-2", -2)):
        results = []
        for value in (same_as, grow):
            p.extra_generation_params.clear()
            p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                                  subject=Image.fromarray(rgba), x=20, y=20, grow=value, feather=1.5)  # fmt: skip
            results.append(np.asarray(_postprocess(webui, runner, p, before)))
            assert p.extra_generation_params["PHNet mask refine"] == f"grow {same_as}, feather 1.5"
        np.testing.assert_array_equal(results[1], results[0])


@pytest.mark.parametrize("grow", ["1.5", 1.5], ids=["str", "float"])
def test_a_grow_of_a_fraction_of_a_pixel_is_named_once(webui, capsys, grow):
    # "1.5" ended in int()'s own words, and 1.5 was taken as 1 without a word
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=_subject(), x=20, y=20, grow=grow)  # fmt: skip
    _fails(webui, capsys, runner, p, rf"^PHNet: grow must be a whole number, got {re.escape(repr(grow))}\.$")
    assert p.extra_generation_params["PHNet result"] == f"not run: grow must be a whole number, got {grow!r}."


def test_models_are_loaded_once(webui, monkeypatch):
    from phnet import Harmonizer

    calls = []
    real = Harmonizer.from_pretrained.__func__

    def counting(cls, *a, **k):
        calls.append(a)
        return real(cls, *a, **k)

    monkeypatch.setattr(Harmonizer, "from_pretrained", classmethod(counting))
    script, runner = _runner(webui, True)
    mask = np.zeros((48, 64), np.uint8)
    mask[10:40, 20:50] = 255
    p = webui.processing.StableDiffusionProcessingImg2Img(width=64, height=48, mask=Image.fromarray(mask),
                                                          inpaint_full_res=False)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=INPAINT)
    for seed in range(3):  # a batch of three images
        _postprocess(webui, runner, p, _generated(seed=seed))
    assert len(calls) == 1


def _fails(webui, capsys, runner, p, message):
    """The WebUI reports the error, names the hook, and keeps the image as generated."""
    before = _generated()
    assert _postprocess(webui, runner, p, before) is before
    err, records = _reported(webui, capsys)
    assert "*** Error running postprocess_image:" in err and "phnet_webui.py" in err
    assert len(records) == 1 and re.search(message, records[0]["exception"]), records


def test_clear_errors(webui, capsys):
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=INPAINT)
    _fails(webui, capsys, runner, p, "needs img2img inpainting")
    # process() recorded the settings; the failed image's infotext and page say it was not run, and why
    assert p.extra_generation_params["PHNet result"].startswith("not run: 'Inpaint mask' needs img2img inpainting")
    assert any(c.startswith("PHNet: not run: 'Inpaint mask'") for c in p.comments)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT)
    _fails(webui, capsys, runner, p, "upload a subject")
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SAM)
    _fails(webui, capsys, runner, p, "No SAM checkpoint chosen")
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SAM,
                          sam_weights="sam_vit_b_01ec64.pth")
    _fails(webui, capsys, runner, p, r"SAM checkpoint 'sam_vit_b_01ec64.pth' not found in .*sam.*: put it there and "
                                     r"pick it, .* owner/name:filename")
    for path in ("~/sam_vit_b_01ec64.pth", "sub/sam_vit_b_01ec64.pth"):  # mistyped paths, not Hub repos
        p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SAM,
                              sam_weights=path)
        _fails(webui, capsys, runner, p, r"not found in .*sam.*: put it there and pick it, give its full path")
    p.script_args = _args(webui, runner, script, enable=True, weights="not-there", mask_source=SUBJECT)
    _fails(webui, capsys, runner, p, "'not-there' not found in .*PHNet")


def test_the_upscale_pass_of_an_image_already_harmonized_leaves_it_alone(webui, capsys):
    """The txt2img Upscale button (and Forge's later hires pass) runs the scripts again on the first pass's
    output: the subject was pasted a second time, off its place at the new size."""
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=_subject())
    p.txt2img_upscale = True
    before = _generated()
    assert _postprocess(webui, runner, p, before) is before
    # no infotext kept with it (PNG info off): whether PHNet ran there is not known
    assert "not run again: the upscale pass starts from the first pass's picture, harmonized there if PHNet ran" \
        in capsys.readouterr().out
    assert p.extra_generation_params["PHNet result"].startswith("not run again")
    p.firstpass_image = _generated()
    p.firstpass_image.info["parameters"] = 'a portrait\nSteps: 20, PHNet weights: tiny-phnet, PHNet result: "changed"'
    assert _postprocess(webui, runner, p, before) is before
    assert p.extra_generation_params["PHNet result"].startswith("not run again: the upscale pass starts from the "
                                                                "first pass's harmonized picture")
    # PHNet on but not run (no subject uploaded yet): that first pass was not harmonized either
    p.firstpass_image.info["parameters"] = ('a portrait\nSteps: 20, PHNet weights: tiny-phnet, PHNet result: '
                                            '"not run: upload a subject cut-out"')
    assert _postprocess(webui, runner, p, before) is before
    assert p.extra_generation_params["PHNet result"].startswith("not run: PHNet did not run on the first pass")
    # a first pass made with PHNet off (its infotext, read back from the gallery's file, has no PHNet in it)
    p.firstpass_image = _generated()
    p.firstpass_image.info["parameters"] = "a portrait\nSteps: 20, Sampler: Euler a, Seed: 1"
    assert _postprocess(webui, runner, p, before) is before
    assert p.extra_generation_params["PHNet result"].startswith("not run: the upscale pass starts from a first "
                                                                "pass made with PHNet off")


@pytest.mark.parametrize("source, field, value", [(SUBJECT, "x", "abc"), (SUBJECT, "scale", float("inf")),
                                                  (SAM, "box_x0", float("nan")), (SAM, "box_y1", "a"),
                                                  (SUBJECT, "feather", "wide"), (SUBJECT, "strength", float("nan")),
                                                  (SUBJECT, "scale", 2**2000)])  # OverflowError's words, twice
def test_a_setting_sent_as_no_number_is_named_once(webui, capsys, source, field, value):
    # a raw int() or float() error, raised by process() and again by postprocess_image, with no result line (one
    # report of the error: process() records nothing)
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    settings = {"box_x0": 8, "box_y0": 4, "box_x1": 40, "box_y1": 30, field: value}
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=source,
                          subject=_subject(), sam_weights="tiny_sam.safetensors", **settings)  # fmt: skip
    name = field.replace("_", " ")
    _fails(webui, capsys, runner, p, rf"^PHNet: {name} must be a number, got {re.escape(repr(value))}\.$")
    assert p.extra_generation_params["PHNet result"] == f"not run: {name} must be a number, got {value!r}."


@pytest.mark.parametrize("source, field, value", [(SUBJECT, "weights", 3), (SUBJECT, "weights", 0),
                                                  (SAM, "weights", True), (SAM, "sam_weights", [1]),
                                                  (SAM, "sam_weights", {"a": 1})])
def test_a_model_sent_as_no_string_is_named_once(webui, capsys, source, field, value):
    # 3 ended in "'int' object has no attribute 'strip'", and 0 took the bundled weights without a word
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    settings = {"weights": "tiny-phnet", "sam_weights": "tiny_sam.safetensors", field: value}
    p.script_args = _args(webui, runner, script, enable=True, mask_source=source, subject=_subject(), box_x0=8,
                          box_y0=4, box_x1=40, box_y1=30, **settings)  # fmt: skip
    label = {"weights": "Weights", "sam_weights": "SAM checkpoint"}[field]
    message = f"{label} must be a name or a path (a string), got {value!r}."
    _fails(webui, capsys, runner, p, rf"^PHNet: {re.escape(message)}$")
    assert p.extra_generation_params["PHNet result"] == f"not run: {message}"


@pytest.mark.parametrize("value", ["false", "word", [1], -5, 2, ""])
def test_an_enable_sent_as_neither_true_nor_false_is_named_once(webui, capsys, value):
    # a truthy one ("false" too) turned PHNet on, a falsy one ("") left it off without a word
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=value, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=_subject(), x=20, y=20)  # fmt: skip
    runner.process(p)
    assert "PHNet weights" not in p.extra_generation_params  # process() records nothing: the error is said once
    sent = f"not the string {value!r}" if isinstance(value, str) else f"got {value!r}"
    message = f"enable must be JSON true or false (or 1 or 0), {sent}."
    _fails(webui, capsys, runner, p, rf"^PHNet: {re.escape(message)}$")
    assert p.extra_generation_params["PHNet result"] == f"not run: {message}"


def test_an_enable_sent_as_0_or_1_is_off_or_on(webui):
    script, runner = _runner(webui, False)
    for value in (0, 1):
        p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
        p.script_args = _args(webui, runner, script, enable=value, weights="tiny-phnet", mask_source=SUBJECT,
                              subject=_subject(), x=20, y=20)  # fmt: skip
        before = _generated()
        after = _postprocess(webui, runner, p, before)
        assert (after is before) == (value == 0)
        assert ("PHNet result" in p.extra_generation_params) == (value == 1)


def test_the_api_null_takes_the_default(webui):
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=_subject(), strength=None, scale=None, grow=None, feather=1.0, threshold=None)
    settings = webui.script_module.Settings.from_args(p.script_args[script.args_from:script.args_to], p)
    assert (settings.strength, settings.scale, settings.grow, settings.threshold) == (1.0, 1.0, 0, -1.0)
    assert not np.array_equal(np.asarray(_postprocess(webui, runner, p, _generated())), np.asarray(_generated()))
    # as the controls show them: the tab's first mask source, SAM's box 0,0 to 512,512
    nulls = webui.script_module.Settings.from_args([True] + [None] * 16, p)
    assert nulls.mask_source == SUBJECT and nulls.box == (0, 0, 512, 512)
    img2img = webui.processing.StableDiffusionProcessingImg2Img(width=64, height=48, init_images=[_generated()])
    assert webui.script_module.Settings.from_args([True] + [None] * 16, img2img).mask_source == INPAINT


def _inpainting_run(webui):
    """The script on for an img2img run whose inpaint mask marks a box: its runner and processing."""
    full = np.zeros((48, 64), np.uint8)
    full[10:40, 20:44] = 255
    script, runner = _runner(webui, True)
    p = webui.processing.StableDiffusionProcessingImg2Img(width=64, height=48, mask=Image.fromarray(full),
                                                          inpaint_full_res=False)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=INPAINT)
    return runner, p


def test_an_image_of_a_batch_that_fails_does_not_carry_the_result_of_the_one_before(webui, capsys, monkeypatch):
    runner, p = _inpainting_run(webui)
    _postprocess(webui, runner, p, _generated(seed=0))
    assert p.extra_generation_params["PHNet result"].startswith("changed by RMS")

    def out_of_memory(*args):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(webui.script_module, "_harmonize", out_of_memory)
    _fails(webui, capsys, runner, p, "out of memory")
    assert p.extra_generation_params["PHNet result"] == "not run: CUDA out of memory (simulated)"


class _Refusal(ValueError):
    pass


@pytest.mark.parametrize("error, shown", [
    (FileNotFoundError("no file x.safetensors: put it in models/PHNet"),
     "PHNet: no file x.safetensors: put it in models/PHNet."),
    (ValueError("is this a mask?"), "PHNet: is this a mask?"),
    (ValueError("words end here.\n"), "PHNet: words end here."),
    (ValueError(""), ""),
    (_Refusal("PHNet: already in the WebUI's words."), "PHNet: already in the WebUI's words."),
    # the library's own kinds stay (they were raised as ValueError and FileNotFoundError), as do its capitals
    (SeveralCheckpoints("d", ["a.pth", "b.pth"], choose="pick one"),
     "PHNet: several SAM checkpoints in d: a.pth, b.pth; choose one: pick one."),
    (NotInCache("weights", "o/n", None, None, "offline", [None]), None),
    (FileNotFoundError("SAM checkpoint 'x.pth' not found in folder d"),
     "PHNet: SAM checkpoint 'x.pth' not found in folder d."),
    (ValueError("'x' is not a file of the repo"), "PHNet: 'x' is not a file of the repo."),
    (ValueError("No SAM checkpoint chosen: pick one."), "No SAM checkpoint chosen: pick one."),
    # an OSError that names its file is no refusal: its errno, file and words stay
    (FileNotFoundError(2, "No such file or directory", "x.png"), "[Errno 2] No such file or directory: 'x.png'"),
])
def test_a_refusal_reaches_the_page_in_the_webui_s_words_and_keeps_its_kind(webui, capsys, monkeypatch, error, shown):
    """A refusal of the library, lower-case with no closing period, reads as the script's own messages do; one in
    those words already, and one with no words, are raised as they came."""
    def refused(*args):
        raise error

    runner, p = _inpainting_run(webui)
    monkeypatch.setattr(webui.script_module, "_harmonize", refused)
    if shown is None:  # its words are long: the library's, as the WebUI's sentence
        shown = f"PHNet: {error}."
    before = _generated()
    assert _postprocess(webui, runner, p, before) is before
    err, records = _reported(webui, capsys)
    assert "*** Error running postprocess_image:" in err
    assert [(r["type"], r["exception"]) for r in records] == [(type(error).__name__, shown)]
    assert p.extra_generation_params["PHNet result"] == f"not run: {shown.removeprefix('PHNet: ')}"



def test_each_image_of_a_batch_and_the_grid_carry_their_own_result(webui, monkeypatch):
    import copy
    import json

    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48, batch_size=2, n_iter=2)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=_subject(), x=30, y=20, scale=1.0, anchor="top-left")
    p.scripts = runner
    real, calls = webui.script_module._harmonize, []

    def every_third_fails(p, image, s):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("simulated")
        return real(p, image, s)

    monkeypatch.setattr(webui.script_module, "_harmonize", every_third_fails)
    texts = []
    for n in range(4):  # the WebUI makes each image's infotext right after its postprocess_image
        p.iteration, p.batch_index = divmod(n, 2)
        pp = webui.scripts.PostprocessImageArgs(_generated(seed=n))
        try:
            runner.postprocess_image(p, pp)
        except RuntimeError:
            pass
        texts.append(webui.processing.create_infotext(p, index=p.batch_index)["PHNet result"])
    assert texts[2] == "not run: simulated" and all(t.startswith("changed by RMS") for t in texts[:2] + texts[3:])
    grid = webui.processing.create_infotext(p, use_main_prompt=True)["PHNet result"]
    assert grid.startswith("image 1: changed by RMS") and "| image 3: not run: simulated | image 4: " in grid
    # older WebUIs read the value as the string it is; the WebUI copies and serialises its parameters
    result = p.extra_generation_params["PHNet result"]
    assert str(result) == texts[3] and json.loads(json.dumps(result)) == texts[3]
    assert copy.deepcopy(result)(p=p, index=0) == texts[2]


# ---- weights resolution ------------------------------------------------------------------


def test_weights_list_and_default(webui, tmp_path):
    m = webui.script_module
    phnet_dir = webui.models_path / "PHNet"
    (phnet_dir / "official.pth").write_bytes(b"")
    (phnet_dir / "notes.txt").write_text("ignored")
    assert m.phnet_choices(str(phnet_dir)) == [DEFAULT, *OFFICIAL, "official.pth", "tiny-phnet"]
    assert m.phnet_choices(str(tmp_path / "missing")) == [DEFAULT, *OFFICIAL]
    (phnet_dir / "official-ffhqh512").mkdir()
    (phnet_dir / "official-ffhqh512" / "config.json").write_text("{}")  # a downloaded copy: listed once
    assert m.phnet_choices(str(phnet_dir)).count("official-ffhqh512") == 1
    # the bundled default loads with no download (HF offline for the whole test run in CI)
    h = m.load_harmonizer(DEFAULT, str(phnet_dir))
    assert h.config.name == "default-cpu" and h.device.type == "cpu"  # modules.devices.device
    assert m.load_harmonizer("", str(phnet_dir)) is h  # cached


def test_missing_default_weights_say_what_to_do(webui, monkeypatch, tmp_path):
    import phnet.weights

    monkeypatch.setattr(phnet.weights, "DEFAULT_DIR", tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="no bundled default PHNet weights.*models.PHNet.*Hugging Face repo id"):
        webui.script_module.load_harmonizer(DEFAULT, str(webui.models_path / "PHNet"))


def test_weights_by_path_and_by_repo_id(webui, monkeypatch):
    from phnet import Harmonizer

    m = webui.script_module
    h = m.load_harmonizer(str(webui.models_path / "PHNet" / "tiny-phnet"), str(webui.models_path / "PHNet"))
    assert h.config.image_size == 64
    asked = []
    monkeypatch.setattr(Harmonizer, "from_pretrained",
                        classmethod(lambda cls, source, **kw: asked.append((source, kw))))
    m.load_harmonizer("someone/phnet-weights@v1", str(webui.models_path / "PHNet"))
    assert asked[0][0] == "someone/phnet-weights" and asked[0][1]["revision"] == "v1"
    m.load_harmonizer("official-ffhqh512", str(webui.models_path / "PHNet"))  # downloaded into models/PHNet
    assert asked[1][0] == "official-ffhqh512" and asked[1][1]["cache_dir"] == str(webui.models_path / "PHNet")


def test_a_weights_path_that_does_not_exist_is_named_as_a_path(webui, tmp_path):
    """A mistyped path was 'not found in models/PHNet, and it is neither an official name nor a Hugging Face repo
    id', as if it were meant for one of those."""
    m = webui.script_module
    phnet_dir = str(webui.models_path / "PHNet")
    missing = tmp_path / "runs" / "best.safetensors"
    for choice, said in ((str(missing), f"no file or folder at {missing};"), ("mine.pth", f"no file or folder at "
                         f"mine.pth or in {phnet_dir};"), ("runs/a/b", "no file or folder at runs/a/b or in")):
        with pytest.raises(FileNotFoundError) as refused:
            m.load_harmonizer(choice, phnet_dir)
        assert said in str(refused.value) and "check the path, or pick an entry from the list" in str(refused.value)
    with pytest.raises(FileNotFoundError, match="neither an official name nor a Hugging Face repo id"):
        m.load_harmonizer("no such weights", phnet_dir)


def test_an_official_name_whose_folder_exists_goes_through_the_official_fetch(webui, monkeypatch):
    """models/PHNet/official-X was loaded as a plain folder: a .pth put there by hand was unpickled on every load
    and never converted, and a damaged converted copy, once deleted, could not be made again by picking the name."""
    import torch

    from phnet import PHNet, PHNetConfig, config, official, state_dicts

    name, file = "official-ffhqh512", "best_ffhqh512.pth"
    tiny = PHNetConfig(enc_sizes=(3, 8, 8, 16, 16, 32, 32), grid_counts=(4, 2, 1), image_size=64)
    monkeypatch.setitem(config.PRESETS, "tiny-official", tiny)
    monkeypatch.setitem(official.OFFICIAL, name, official.OfficialWeights(name, file, "x.pth", "tiny-official", 64,
                                                                          "FFHQH"))
    m = webui.script_module
    phnet_dir = webui.models_path / "PHNet"
    (phnet_dir / name).mkdir()
    torch.save(PHNet(tiny).state_dict(), phnet_dir / name / file)
    unpickled = []
    load = state_dicts.safe_torch_load
    monkeypatch.setattr(state_dicts, "safe_torch_load", lambda *a, **k: unpickled.append(a[0]) or load(*a, **k))
    assert m.load_harmonizer(name, str(phnet_dir)).config.name == name
    assert (phnet_dir / name / "model.safetensors").is_file()  # converted once
    m.clear_loaded_models()
    assert m.load_harmonizer(name, str(phnet_dir)).config.name == name and len(unpickled) == 1
    copy = phnet_dir / name / "model.safetensors"
    copy.write_bytes(copy.read_bytes()[:100])
    m.clear_loaded_models()
    with pytest.raises(state_dicts.DamagedFile, match="Delete that file and load official-ffhqh512 again"):
        m.load_harmonizer(name, str(phnet_dir))
    copy.unlink()  # as that says: converted again from the .pth beside it
    converted = m.load_harmonizer(name, str(phnet_dir))
    assert converted.config.name == name and copy.is_file()
    assert m.load_harmonizer(name, str(phnet_dir)) is converted  # kept under its new copy: it was read again


def test_requests_arriving_together_load_the_weights_once(webui, monkeypatch):
    """Each request built its own model outside the lock: four at once read the same weights four times and held
    four copies (a SAM vit_h is 2.5 GB each)."""
    import threading
    import time

    from phnet import Harmonizer

    m = webui.script_module
    phnet_dir = str(webui.models_path / "PHNet")
    built = []
    load = Harmonizer.from_pretrained.__func__

    def slow_load(cls, *args, **kwargs):
        built.append(1)
        time.sleep(0.2)  # a large checkpoint being read: the other requests arrive meanwhile
        return load(cls, *args, **kwargs)

    monkeypatch.setattr(Harmonizer, "from_pretrained", classmethod(slow_load))
    together = threading.Barrier(4, timeout=5)
    got = []

    def request():
        together.wait()
        got.append(m.load_harmonizer("tiny-phnet", phnet_dir))

    threads = [threading.Thread(target=request) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len(got) == 4 and all(h is got[0] for h in got)
    # official weights are keyed by their copy, which the first build downloads: the others find it once built
    copy = []
    m.clear_loaded_models()
    got.clear()

    def download():
        time.sleep(0.2)
        copy.append("stamp")
        return object()

    def official_request():
        together.wait()
        got.append(m._cached("phnet", lambda: tuple(copy), download))

    threads = [threading.Thread(target=official_request) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert copy == ["stamp"] and len(got) == 4 and all(h is got[0] for h in got)


def test_weights_retrained_under_the_same_name_are_loaded_again(webui):
    import os

    m = webui.script_module
    phnet_dir = str(webui.models_path / "PHNet")
    first = m.load_harmonizer("tiny-phnet", phnet_dir)
    assert m.load_harmonizer("tiny-phnet", phnet_dir) is first
    weights = webui.models_path / "PHNet" / "tiny-phnet" / "model.safetensors"
    later = weights.stat().st_mtime_ns + 10**9
    os.utime(weights, ns=(later, later))  # written again by a training run
    assert m.load_harmonizer("tiny-phnet", phnet_dir) is not first


def test_sam_choices(webui):
    m = webui.script_module
    sam_dirs = [str(webui.models_path / "sam"), str(webui.models_path / "sams")]
    assert m.sam_choices(sam_dirs) == ["tiny_sam.safetensors"]
    seg = m.load_segmenter("tiny_sam.safetensors", sam_dirs)
    assert m.load_segmenter("tiny_sam.safetensors", sam_dirs) is seg
    import os

    weights = webui.models_path / "sam" / "tiny_sam.safetensors"
    later = weights.stat().st_mtime_ns + 10**9
    os.utime(weights, ns=(later, later))  # downloaded again, or replaced under the same name
    assert m.load_segmenter("tiny_sam.safetensors", sam_dirs) is not seg  # the old model was served on
    quoted = f'"{weights}"'  # Explorer's "Copy as path", as the Weights field takes it
    assert m.load_segmenter(quoted, sam_dirs) is not None


def test_a_sam_repo_with_several_checkpoints_is_met_with_the_webuis_way_to_choose(webui, monkeypatch):
    from phnet.sam import SamSegmenter, SeveralCheckpoints

    def several(*args, **kwargs):
        raise SeveralCheckpoints("Hugging Face repo 'someone/sams'", ["a.pth", "b.pth"])

    monkeypatch.setattr(SamSegmenter, "from_pretrained", several)
    with pytest.raises(SeveralCheckpoints, match=r"; choose one: type the file after the repo, someone/sams:FILE\.$"):
        webui.script_module.load_segmenter("someone/sams", [str(webui.models_path / "sam")])
    with pytest.raises(SeveralCheckpoints, match=r"; choose one: pick the file itself, or give its full path\.$"):
        webui.script_module.load_segmenter("tiny_sam.safetensors", [str(webui.models_path / "sam")])


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


def test_the_core_knows_no_host():
    """phnet/ is shared by ComfyUI, the WebUI and plain Python: no host imports, and the WebUI is
    named only where a module says it does not import it."""
    import re
    from pathlib import Path

    import phnet

    core = Path(phnet.__file__).resolve().parent
    host_import = re.compile(r"^\s*(from|import)\s+(gradio|modules|launch|comfy|folder_paths)\b", re.M)
    offenders = []
    for path in sorted(core.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if host_import.search(text):
            offenders.append(f"{path.name}: imports a host module")
        offenders += [f"{path.name}: {line.strip()}" for line in text.splitlines()
                      if re.search(r"web\s*ui|gradio|a1111", line, re.I) and "import" not in line]  # fmt: skip
    assert offenders == []
    assert not (core / "integrations.py").exists()


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


def test_the_bundled_weights_say_how_much_of_the_correction_they_applied(webui, capsys):
    from pathlib import Path

    from phnet import PHNetConfig
    from phnet.sources import BUNDLED_DIR

    examples = Path(__file__).resolve().parents[2] / "examples"
    image = Image.open(examples / "composite.png").convert("RGB")
    mask = Image.open(examples / "mask.png").convert("L")
    script, runner = _runner(webui, True)
    p = webui.processing.StableDiffusionProcessingImg2Img(width=image.width, height=image.height, init_images=[image],
                                                          mask=mask, inpaint_full_res=False)
    p.script_args = _args(webui, runner, script, enable=True, weights=DEFAULT, mask_source=INPAINT)
    shortened = np.abs(np.asarray(_postprocess(webui, runner, p, image), float) - np.asarray(image, float)).mean()
    result = p.extra_generation_params["PHNet result"]
    threshold = PHNetConfig.load(BUNDLED_DIR / "config.json").correction_threshold
    assert result.startswith("changed by RMS") and f"which is below the do-no-harm threshold {threshold:g}" in result
    assert "official-ffhqh512" in result and f"PHNet: {result}" in capsys.readouterr().out
    p.extra_generation_params.clear()
    p.script_args = _args(webui, runner, script, enable=True, weights=DEFAULT, mask_source=INPAINT, threshold=0.0)
    raw = np.abs(np.asarray(_postprocess(webui, runner, p, image), float) - np.asarray(image, float)).mean()
    assert 0 < shortened < raw
    assert p.extra_generation_params["PHNet threshold"] == 0.0
    assert p.extra_generation_params["PHNet result"].startswith("changed by RMS")


def test_an_rgba_image_from_another_extension_keeps_its_alpha(webui):
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=_subject(), x=40, y=20, anchor="top-left")
    before = _generated()
    alpha = np.zeros((48, 64), np.uint8)
    alpha[:, 32:] = 255
    before.putalpha(Image.fromarray(alpha))
    after = _postprocess(webui, runner, p, before)
    assert after.mode == "RGBA" and np.array_equal(np.asarray(after)[..., 3], alpha)


def test_the_subject_is_matched_to_what_an_rgba_images_alpha_shows(webui):
    """The script harmonized the picture's RGB, matching the subject to what lies under alpha 0 too (black here),
    as the library does not."""
    script, runner = _runner(webui, False)
    p = webui.processing.StableDiffusionProcessingTxt2Img(width=64, height=48)
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=_subject(), x=40, y=20, anchor="top-left", threshold=0.0)
    alpha = np.zeros((48, 64), np.uint8)
    alpha[:, 20:] = 255
    rgb = np.asarray(_generated()).copy()
    rgb[alpha == 0] = 0
    before = Image.fromarray(rgb)
    before.putalpha(Image.fromarray(alpha))
    after = _postprocess(webui, runner, p, before)
    assert p.extra_generation_params["PHNet result"].endswith("the transparent part was left out of the scene to "
                                                              "match")
    m = webui.script_module
    pasted, mask, _ = m._paste_subject(Image.fromarray(rgb), m.Settings(True, "tiny-phnet", 1.0, SUBJECT, _subject(),
                                                                       40, 20, 1.0, "top-left"))
    seen = m.load_harmonizer("tiny-phnet", m._models_dirs()[0])(np.asarray(pasted), mask, threshold=0,
                                                                 reference_mask=alpha > 0)
    assert np.array_equal(np.asarray(after)[..., :3], seen)


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


def test_sd_upscale_tiles_are_left_alone_with_a_pasted_subject(webui, capsys):
    """The SD upscale script runs the always-on scripts per tile: the subject was pasted into every tile."""
    script, runner = _runner(webui, True)
    rgba = np.zeros((16, 12, 4), np.uint8)
    rgba[2:14, 2:10] = (230, 40, 40, 255)
    p = webui.processing.StableDiffusionProcessingImg2Img(width=64, height=48, init_images=[_generated(seed=1)])
    p.extra_generation_params["SD upscale overlap"] = 64  # what the SD upscale script sets before its tiles
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=SUBJECT,
                          subject=Image.fromarray(rgba), x=30, y=20)  # fmt: skip
    tile = _generated()
    assert _postprocess(webui, runner, p, tile) is tile
    assert "not run on SD upscale's tiles" in capsys.readouterr().out
    assert p.extra_generation_params["PHNet result"].startswith("not run on SD upscale's tiles")  # not "applied"


def test_sd_upscale_tiles_are_left_alone_with_the_inpaint_mask_source_too(webui, capsys):
    """SD upscale from the img2img tab with PHNet's default source, "Inpaint mask": every tile failed with a
    traceback asking for a painted mask, where the other sources get one line saying what to do."""
    script, runner = _runner(webui, True)
    p = webui.processing.StableDiffusionProcessingImg2Img(width=64, height=48, init_images=[_generated(seed=1)])
    p.extra_generation_params["SD upscale overlap"] = 64
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet")
    tile = _generated()
    assert _postprocess(webui, runner, p, tile) is tile
    out = capsys.readouterr().out
    assert "not run on SD upscale's tiles (a tile has no inpaint mask of its own); harmonize the picture first, " \
           "then upscale it with PHNet off" in out
    assert p.extra_generation_params["PHNet result"].startswith("not run on SD upscale's tiles")
    assert _reported(webui, capsys)[1] == []


@pytest.mark.parametrize("source", [INPAINT, SUBJECT])
def test_ultimate_sd_upscale_tiles_are_left_alone_whatever_the_mask_source(webui, capsys, source):
    """Ultimate SD upscale runs img2img once per tile with a tile mask: a subject landed in every tile, and the
    inpaint source matched each tile to its own padding."""
    script, runner = _runner(webui, True)
    tile_mask = np.zeros((48, 64), np.uint8)
    tile_mask[8:40, 8:56] = 255
    p = webui.processing.StableDiffusionProcessingImg2Img(width=64, height=48, mask=Image.fromarray(tile_mask),
                                                          inpaint_full_res=True)
    p.extra_generation_params["Ultimate SD upscale upscaler"] = "R-ESRGAN 4x+"  # set before its tiles
    p.script_args = _args(webui, runner, script, enable=True, weights="tiny-phnet", mask_source=source,
                          subject=_subject(), x=30, y=20)
    tile = _generated()
    assert _postprocess(webui, runner, p, tile) is tile
    result = p.extra_generation_params["PHNet result"]
    assert result.startswith("not run on Ultimate SD upscale's tiles")
    assert ("tile mask is not your inpaint mask" in result) == (source == INPAINT)


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


def test_hub_weights_missing_offline_point_at_the_webui_s_folder(webui, monkeypatch, tmp_path, own_hub_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    webui.script_module.clear_loaded_models()
    with pytest.raises(FileNotFoundError, match="put the weights in .* and pick them under 'Weights'"):
        webui.script_module.load_harmonizer("someone/phnet-portraits", str(tmp_path / "PHNet"))



@pytest.mark.parametrize("choice, advice", [("someone/phnet-gone", "In the WebUI you may also put the weights"),
                                            ("", "In the WebUI: put weights in")])
def test_missing_weights_ending_as_a_sentence_are_followed_by_the_webui_s_words_after_one_period(
        webui, monkeypatch, tmp_path, choice, advice):
    """The WebUI's advice follows the library's words as a clause: a closing period of theirs is not doubled."""
    from phnet import Harmonizer

    def missing(cls, source, **kw):
        raise FileNotFoundError("the weights are gone.")

    monkeypatch.setattr(Harmonizer, "from_pretrained", classmethod(missing))
    webui.script_module.clear_loaded_models()
    with pytest.raises(FileNotFoundError) as e:
        webui.script_module.load_harmonizer(choice, str(tmp_path / "PHNet"))
    assert str(e.value).startswith(f"the weights are gone. {advice}")

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


def test_every_message_the_script_raises_ends_as_a_sentence():
    """The WebUI shows a message as its own line: each of the script's ends with a period, as nearly all did. (A
    message that ends with a value is read by hand.)"""
    from tests.helpers.messages import last_words, message_templates
    from tests.webui.harness import SCRIPT

    templates = list(message_templates(SCRIPT, returned=True))
    ends = [(where, last_words(message)) for where, message, _ in templates]
    assert len(templates) > 20 and [where for where, end in ends if end is not None and not end.endswith(".")] == []
